"""The one rule for text sessiongate accepts, on the wire and in every store.

Text must be valid Unicode (no lone surrogate such as ``"\\ud800"``: not UTF-8)
and hold no NUL (PostgreSQL text cannot); an indexed value (a key, label or id)
also fits in a bounded number of UTF-8 bytes. `wire.check_text` applies it to
what arrives, `store.base.check_storable` to what is about to be stored.
"""

from __future__ import annotations

__all__ = ["text_problem"]


def text_problem(value: str, max_bytes: int | None = None) -> str | None:
    """Why `value` is not acceptable text (None when it is), e.g. ``holds NUL (\\u0000)``."""
    if "\x00" in value:
        return "holds NUL (\\u0000)"
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            return "is not valid Unicode (lone surrogate)"
    if max_bytes is not None and size > max_bytes:
        return f"is longer than {max_bytes} bytes"
    return None
