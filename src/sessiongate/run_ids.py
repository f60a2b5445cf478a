"""Run ids: random UUIDs (version 4) in their text form, as `str(uuid.uuid4())` gives them.

`uuid.uuid4()` reads 16 bytes with a system call per id, and that call releases the GIL:
under load the store thread takes it there and the event loop waits to get it back (py-spy
put ~5% of a send's samples, GIL or not, on that one line). Here the bytes come from the
same source, `os.urandom`, 4 KiB at a time, and are formatted by hand: the same version
and variant bits, the same 122 random bits per id, one system call per 256 ids. A forked
child drops its parent's unused ids (it would hand out the same ones).
"""

from __future__ import annotations

import os

__all__ = ["new_run_id"]

_BATCH = 256  # ids per read of random bytes
# the variant nibble: its two high bits 10 (RFC 4122), its two low bits kept random
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_ready: list[str] = []


def new_run_id() -> str:
    """A fresh random UUID, e.g. ``'1b4e28ba-2fa1-41d2-883f-0016d3cca427'``."""
    try:
        return _ready.pop()  # atomic: two threads never get the same id
    except IndexError:
        _ready.extend(_fresh_ids())
        return _ready.pop()


def _fresh_ids() -> list[str]:
    digits = os.urandom(16 * _BATCH).hex()
    return [
        f"{d[:8]}-{d[8:12]}-4{d[13:16]}-{_VARIANT[d[16]]}{d[17:20]}-{d[20:32]}"
        for d in (digits[i : i + 32] for i in range(0, len(digits), 32))
    ]


os.register_at_fork(after_in_child=_ready.clear)
