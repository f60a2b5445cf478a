"""What the gateway's typed operations answer: frozen values, each with one `to_wire()`.

`Gateway.send` gives a `SendOutcome`, `spawn` a `SpawnOutcome`, `list_sessions` a
`SessionListing`, `history` a `History`; `show` and `resolve` give the resolver's
`Resolution` (and `ShownSession`), `subscribe` a `Subscription`. A surface shapes
these as its wire wants; `to_wire()` is the gateway's own (camelCase) form, which
HTTP, the native WebSocket, MCP and LLM tool results share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sessiongate.store.base import MessageRecord, SessionRecord

__all__ = [
    "History",
    "Outcome",
    "SendOutcome",
    "SendStatus",
    "SessionListing",
    "ShownSession",
    "SpawnOutcome",
    "Subscription",
]

SendStatus = Literal["ok", "accepted", "timeout", "error"]


class Outcome(Protocol):
    """Any operation's answer."""

    def to_wire(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """A send's run: finished (``ok``/``error``), ``accepted`` (not waited for) or
    ``timeout`` (still running after the wait)."""

    status: SendStatus
    run_id: str
    session_key: str
    reply: str | None = None
    error: dict[str, Any] | None = None
    duplicate: bool = False  # a repeated idempotency key: this is the first send's run
    warnings: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "status": self.status,
            "runId": self.run_id,
            "sessionKey": self.session_key,
        }
        if self.status == "ok":
            wire["reply"] = self.reply
        if self.error is not None:
            wire["error"] = self.error
        if self.duplicate:
            wire["duplicate"] = True
        if self.warnings:
            wire["warnings"] = list(self.warnings)
        return wire


@dataclass(frozen=True, slots=True)
class SpawnOutcome:
    """A spawned run: accepted at once, in a fresh child (or a named session)."""

    child_session_key: str
    run_id: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "status": "accepted",
            "childSessionKey": self.child_session_key,
            "runId": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class SessionListing:
    """A page of the sessions a caller may see, newest first (with each one's newest
    messages when they were asked for)."""

    sessions: tuple[SessionRecord, ...]
    next_cursor: str | None
    messages: dict[str, list[MessageRecord]] | None = None

    def to_wire(self) -> dict[str, Any]:
        rows = [session.to_wire() for session in self.sessions]
        if self.messages is not None:
            for row in rows:
                row["messages"] = [m.to_wire() for m in self.messages.get(row["key"], [])]
        return {"sessions": rows, "nextCursor": self.next_cursor}


@dataclass(frozen=True, slots=True)
class History:
    """A session's transcript, oldest first."""

    session_key: str
    messages: tuple[MessageRecord, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"sessionKey": self.session_key, "messages": [m.to_wire() for m in self.messages]}


@dataclass(frozen=True, slots=True)
class ShownSession:
    """A session as read by reference (never created), and the reference it was asked by."""

    session: SessionRecord
    requested_key: str

    def to_wire(self) -> dict[str, Any]:
        return {**self.session.to_wire(), "requestedKey": self.requested_key}


@dataclass(frozen=True, slots=True)
class Subscription:
    """A session whose run events now reach a listener, and how to stop them."""

    session_key: str
    unsubscribe: Callable[[], None] = field(repr=False)

    def to_wire(self) -> dict[str, Any]:
        return {"sessionKey": self.session_key}
