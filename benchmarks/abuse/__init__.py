"""Hostile clients against a real `sessiongate serve` on loopback, with printed figures.

.venv/bin/python -m benchmarks.abuse            # every attack, budgets on and off (~3 min)
.venv/bin/python -m benchmarks.abuse --quick    # shorter attacks, smaller counts
.venv/bin/python -m benchmarks.abuse --round2   # only round 2 (round2.py): an honest
                                                # client beside each hostile-input attack

Each attack runs against a gateway process of its own. "budgets off" runs the
same gateway with every `gateway.limits` value at its maximum — an emulation of
the gateway before the budgets existed (the original figures are in
benchmarks/README.md). The light, outcome-only version runs in the test suite
(tests/test_limits.py, tests/test_paging_probe.py, tests/test_config_scale.py,
tests/test_hostile.py).
"""
