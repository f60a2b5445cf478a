"""The argument field types every wire model shares: each limit is set here, once.

A surface's own wire shape (HTTP query, WebSocket params, OpenClaw's methods, an
inbound channel message) spells its fields with these types, so the tools, the
surfaces and the JSON schema offered to LLMs and MCP clients agree on every limit.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from sessiongate.store.base import MAX_SEQ

__all__ = [
    "ActiveMinutes",
    "HistoryLimit",
    "IdempotencyKey",
    "Label",
    "ListLimit",
    "MessageText",
    "Reason",
    "Seq",
    "SessionRef",
    "WaitSeconds",
]

MAX_MESSAGE_CHARS = 200_000
MAX_WAIT_SECONDS = 600
MAX_LABEL_CHARS = 200
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_LIST_LIMIT = 500
MAX_HISTORY_LIMIT = 1000

MessageText = Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
"""A message or task text: not empty, at most 200,000 characters."""

WaitSeconds = Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)]
"""How long a send waits for its reply: 0 (fire and forget) to 600 seconds."""

IdempotencyKey = Annotated[str, Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS)]
"""A caller-chosen key that makes a repeated send answer with the first one's run."""

CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """One printable line: no control characters (terminals show labels and reasons)."""
    if CONTROL_CHARACTERS.search(text):
        raise ValueError("must not hold control characters (newlines, escapes)")
    return text


Reason = Annotated[str, Field(max_length=500), AfterValidator(_printable)]
"""Why an operation was asked for (kept in the audit and on a tombstone)."""

SessionRef = Annotated[str, Field()]
"""A session reference: a key, an alias, or a bare ``main`` (the resolver checks it)."""

Label = Annotated[str, Field(max_length=MAX_LABEL_CHARS), AfterValidator(_printable)]
"""A session's label."""

ListLimit = Annotated[int, Field(ge=1, le=MAX_LIST_LIMIT)]
"""Sessions per page."""

HistoryLimit = Annotated[int, Field(ge=1, le=MAX_HISTORY_LIMIT)]
"""Messages per transcript read."""

Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]
"""A message's sequence number in its session's transcript."""

ActiveMinutes = Annotated[float, Field(gt=0)]
"""Only sessions updated within this many minutes."""
