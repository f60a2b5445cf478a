"""The `SessionStore` protocol and the records it stores."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from sessiongate.errors import InvalidRequestError

__all__ = [
    "MessageRecord",
    "NewSession",
    "Provenance",
    "RunRecord",
    "SessionPage",
    "SessionRecord",
    "SessionStore",
    "decode_cursor",
    "encode_cursor",
    "iso",
    "now",
]

ORIGINS = ("startup", "address", "spawn", "inbound", "cli", "repair", "imported")
STATUSES = ("active", "archived", "quarantined")
RUN_STATUSES = ("running", "completed", "failed", "interrupted")


def now() -> float:
    """Wall-clock time as stored (seconds since the epoch)."""
    return time.time()


def iso(timestamp: float | None) -> str | None:
    """ISO 8601 (UTC) form of a stored timestamp, as it goes on the wire."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Provenance:
    """How a session came to exist."""

    origin: str
    entry_point: str | None = None
    caller_key: str | None = None
    parent_key: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "entryPoint": self.entry_point,
            "callerSessionKey": self.caller_key,
            "parentSessionKey": self.parent_key,
        }


@dataclass(frozen=True, slots=True)
class NewSession:
    """What `ensure` needs to create a session that is missing."""

    key: str
    agent_id: str
    kind: str
    provenance: Provenance
    label: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    key: str
    agent_id: str
    kind: str
    status: str
    label: str | None
    alias_of: str | None
    provenance: Provenance
    created_at: float
    updated_at: float
    last_seq: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "agentId": self.agent_id,
            "kind": self.kind,
            "label": self.label,
            "status": self.status,
            "aliasOf": self.alias_of,
            "origin": self.provenance.origin,
            "provenance": {**self.provenance.to_wire(), "createdAt": iso(self.created_at)},
            "messageCount": self.last_seq,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class MessageRecord:
    session_key: str
    seq: int
    role: str
    content: str
    run_id: str | None
    created_at: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "seq": self.seq,
            "role": self.role,
            "content": self.content,
            "runId": self.run_id,
            "createdAt": iso(self.created_at),
        }
        if self.meta:
            wire["meta"] = self.meta
        return wire


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    session_key: str
    status: str
    created_at: float
    finished_at: float | None
    error: str | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "sessionKey": self.session_key,
            "status": self.status,
            "createdAt": iso(self.created_at),
            "finishedAt": iso(self.finished_at),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[SessionRecord]
    next_cursor: str | None


def encode_cursor(row_id: int) -> str:
    """An opaque keyset cursor for the row after which the next page starts."""
    return f"s{row_id:x}"


def decode_cursor(cursor: str | None) -> int | None:
    """The row id inside a cursor; InvalidRequestError when it is not one of ours."""
    if cursor is None or cursor == "":
        return None
    try:
        if not cursor.startswith("s") or len(cursor) > 16:  # row ids fit in 63 bits
            raise ValueError(cursor)
        return int(cursor[1:], 16)
    except ValueError:
        raise InvalidRequestError(
            f"invalid cursor {cursor!r:.40}: pass back the nextCursor of a previous page",
            details={"argument": "cursor"},
        ) from None


@runtime_checkable
class SessionStore(Protocol):
    """Sessions, their transcripts and runs. Every method is atomic on its own."""

    shared: bool  # whether several gateway processes may serve from this store at once

    async def find(self, key: str) -> SessionRecord | None:
        """The session stored under this canonical key; None means it does not exist."""

    async def find_by_label(self, label: str, agent_id: str | None) -> SessionRecord | None:
        """The newest active session with this label (of this agent, if given)."""

    async def ensure(self, new: NewSession) -> tuple[SessionRecord, bool]:
        """Create the session unless it exists; True only for the one caller that created it."""

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        """A page of sessions, newest first, filtered by agent and kind."""

    async def append_message(
        self,
        key: str,
        role: str,
        content: str,
        *,
        run_id: str | None = None,
        meta: dict[str, Any] | None = None,
        created_at: float | None = None,
    ) -> MessageRecord:
        """Append to a transcript; sequence numbers per session start at 1 with no gaps."""

    async def history(
        self, key: str, *, limit: int = 50, before: int | None = None
    ) -> list[MessageRecord]:
        """The last `limit` messages (with seq below `before`), oldest first."""

    async def set_alias(self, key: str, target: str | None) -> None:
        """Redirect addresses of `key` to `target` (None removes the redirect)."""

    async def set_status(self, key: str, status: str) -> None:
        """Mark a session active, archived or quarantined."""

    async def start_run(self, run_id: str, session_key: str) -> RunRecord:
        """Record a run as running."""

    async def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Record a run's end: completed, failed or interrupted."""

    async def accept_message(
        self, key: str, content: str, *, run_id: str, meta: dict[str, Any] | None = None
    ) -> tuple[MessageRecord, RunRecord]:
        """Append an inbound (user) message and record its run as running, in one transaction.

        SessionMovedError if the session now redirects (an alias was added since it
        was resolved); nothing is stored then.
        """

    async def complete_run(self, key: str, run_id: str, reply: str) -> MessageRecord:
        """Append a run's reply and mark the run completed, in one transaction."""

    async def find_run(self, run_id: str) -> RunRecord | None:
        """The run with this id; None means it does not exist."""

    async def interrupt_running(self, *, own: bool = False) -> int:
        """Mark `running` runs of processes that are gone as interrupted; return how many.

        Called at start-up and periodically by a serving gateway (a peer process
        may have been killed); with `own`, on close, this store's own runs too.
        """

    def session_lock(self, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Held while a run of `key` executes: one run per session, across processes."""

    async def import_session(self, session: SessionRecord, messages: list[MessageRecord]) -> bool:
        """Insert a session and its transcript as they were (migration); False if present."""

    async def publish_events(self, events: list[dict[str, Any]]) -> None:
        """Tell the other gateway processes sharing this store about run events, in order."""

    async def listen_events(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Deliver run events published by other processes to `listener`."""

    async def count_sessions(self) -> int:
        """How many sessions are stored."""

    async def close(self) -> None:
        """Release connections and threads."""
