"""The one rule for text sessiongate accepts, on the wire and in every store.

Text must be valid Unicode (no lone surrogate such as ``"\\ud800"``: not UTF-8)
and hold no NUL (PostgreSQL text cannot); an indexed value (a key, label or id)
also fits in a bounded number of UTF-8 bytes. `wire.check_text` applies it to
what arrives, `store.base.check_storable` to what is about to be stored.
"""

from __future__ import annotations

import re

__all__ = ["INVISIBLE", "text_problem", "visible"]

# Characters that change how text around them is shown: C0/C1 controls (but newline, tab
# and carriage return), and the bidirectional overrides, embeddings, isolates and marks.
INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def visible(value: str) -> str:
    """`value` with controls and bidi formatting shown as ``⟨U+XXXX⟩`` (a page, a terminal):
    a label cannot reorder, hide or recolour the text around it."""
    return (
        INVISIBLE.sub(lambda m: f"⟨U+{ord(m[0]):04X}⟩", value) if INVISIBLE.search(value) else value
    )


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
