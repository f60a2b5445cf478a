"""Run ids: UUIDs in their usual text form, time-ordered (version 7, RFC 9562).

A run id is the key of the runs table's index. A random id (version 4) lands each new
run on a random leaf of that index, and every commit then rewrites as many index pages
as it stored runs (SQLite writes each page it changed to its write-ahead log, then
again at a checkpoint: ~16 µs of a send's store CPU). A version-7 id begins with the
time in milliseconds, so new runs land at the index's right edge, on its last leaves.
The remaining 74 bits are random: ids stay unique and unguessable.

The random bits come from `os.urandom`, 4 KiB at a time: `uuid.uuid4()` makes a system
call per id, and that call releases the GIL — under load the store thread takes it there
and the event loop waits to get it back. A forked child drops its parent's unused bits
(it would hand out the same ones).
"""

from __future__ import annotations

import os
import time

__all__ = ["new_run_id"]

_BATCH = 256  # ids per read of random bytes
# the variant nibble: its two high bits 10 (RFC 9562), its two low bits kept random
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_random: list[str] = []  # 19 random hex digits per id


def new_run_id() -> str:
    """A fresh time-ordered UUID, e.g. ``'019af0c2-6d3e-7a41-9c2b-5e8f3a1d7b60'``."""
    try:
        digits = _random.pop()  # atomic: two threads never get the same digits
    except IndexError:
        _random.extend(_fresh_digits())
        digits = _random.pop()
    ms = f"{time.time_ns() // 1_000_000:012x}"
    return f"{ms[:8]}-{ms[8:]}-7{digits[:3]}-{_VARIANT[digits[3]]}{digits[4:7]}-{digits[7:]}"


def _fresh_digits() -> list[str]:
    hex_digits = os.urandom(10 * _BATCH).hex()  # 20 digits per id, 19 used
    return [hex_digits[i : i + 19] for i in range(0, len(hex_digits), 20)]


os.register_at_fork(after_in_child=_random.clear)
