"""The benchmark command runs end to end (a few iterations, no timing checks), so it cannot rot."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_command_smoke_run(tmp_path: Path) -> None:
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "smoke.json").read_text())
    assert {"resolver", "scaling", "e2e", "throughput", "rss_with_store"} <= set(results)
    if importlib.util.find_spec("matplotlib") is not None:  # the bench extra, not the dev one
        assert (tmp_path / "latency_vs_sessions-smoke.png").stat().st_size > 0
    assert (ROOT / "benchmarks" / "README.md").read_text() == readme


def test_abuse_suite_smoke_run(tmp_path: Path) -> None:
    """benchmarks.abuse runs end to end; only outcomes are checked, never timings."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.abuse", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads((tmp_path / "abuse-smoke.json").read_text())
    assert {r["budgets"] for r in figures["connections"]} == {True, False}
    budgeted = next(r for r in figures["flood"] if r["budgets"])
    assert budgeted["reads_outcomes"].get("TOO_MANY_REQUESTS", 0) > 0
    assert figures["paging"]["empty_pages_with_cursor"] == 0


def test_openclaw_protocol_benchmark_smoke_run() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.openclaw_protocol", "--count", "4", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "OpenClaw-dialect turn / native turn" in result.stdout


def test_floor_benchmark_smoke_run(tmp_path: Path) -> None:
    """benchmarks.floor runs end to end and prints every ratio beside its target."""
    out = tmp_path / "floor.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.floor", "--smoke", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ratios = json.loads(out.read_text())["ratios"]
    assert {"sends", "ws_turn", "reject", "access_log", "llm_ms", "idle_rss"} <= set(ratios)
    assert ">= 0.50x" in result.stdout
