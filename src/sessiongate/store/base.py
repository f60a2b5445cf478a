"""The store's interfaces, the records they hold, and the rules every backend shares.

Interfaces by consumer, each handed to the parts that use it:

- `SessionLookup`: find, ensure and list sessions, and tombstones (all the resolver needs);
- `Transcript`: append to and read a session's messages;
- `RunLedger`: the bookkeeping of runs (accepted, completed, failed, interrupted);
- `SessionAdmin`: aliases, statuses, bulk import and counts (doctor, importer, page);
- `SessionLifecycle`: deliberate removal — delete (erasure, leaving a tombstone) and reset;
- `Coordination`: what several gateway processes on one store share (locks, events);
  `SingleProcessCoordination` serves the memory and SQLite stores;
- `PageSessions`: the control page's sign-ins, so that a sign-out holds everywhere.

Nothing comes back by itself: every session has an *incarnation* (a fresh id
when it is created and when it is reset). Accepting a message and completing a
run name the incarnation they belong to, and the store refuses them atomically
when it changed (`SessionResetError`) or the session is gone
(`SessionDeletedError`, from the tombstone). `ensure` and `import_session` refuse
a tombstoned key unless the creation was decided after the delete
(`NewSession.decided_at`) or the import is told to.

`SessionStore` is all of them plus opening concerns (`shared`, `ping`, `heal`,
`close`): what a backend subclasses. The public methods check their input here,
once, for every backend (text a backend cannot store is refused by
`check_storable`, numbers are clamped into the range every backend holds, a time
no backend could read back is refused by `store.values.check_timestamp`); a
backend implements only the storage step each one calls. Store faults become
typed errors in each backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sessiongate.errors import (
    InvalidRequestError,
    SessionDeletedError,
    SessionGateError,
    SessionMovedError,
    SessionNotFoundError,
    SessionResetError,
    StoreTimeoutError,
)
from sessiongate.store.values import check_timestamp, readable_timestamp
from sessiongate.text import text_problem
from sessiongate.wire_fields import wire_fields

__all__ = [
    "MAX_SEQ",
    "Coordination",
    "Erasure",
    "MessageRecord",
    "NewMessage",
    "NewSession",
    "Origin",
    "PageSessions",
    "Provenance",
    "ResetOutcome",
    "RunLedger",
    "RunRecord",
    "RunStatus",
    "SessionAdmin",
    "SessionLifecycle",
    "SessionLookup",
    "SessionPage",
    "SessionRecord",
    "SessionStatus",
    "SessionStore",
    "SingleProcessCoordination",
    "Tombstone",
    "Transcript",
    "check_import",
    "check_message",
    "check_new_session",
    "check_storable",
    "clamp_seq",
    "decode_cursor",
    "deleted",
    "encode_cursor",
    "iso",
    "missing",
    "moved",
    "new_incarnation",
    "now",
    "refusal",
    "refused_over_tombstone",
    "reset_since",
    "store_timeout",
]


class Origin(StrEnum):
    """How a session came to exist (its provenance)."""

    STARTUP = "startup"  # each agent's main, at start-up
    ADDRESS = "address"  # a send to a missing key, allowed by createOnMiss
    SPAWN = "spawn"  # a sessions_spawn child
    INBOUND = "inbound"  # a channel message's own session
    CLI = "cli"  # `sessiongate sessions create`
    REPAIR = "repair"  # doctor --fix
    IMPORTED = "imported"  # the OpenClaw importer
    A2A = "a2a"  # an A2A message without contextId: a new context


class SessionStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    QUARANTINED = "quarantined"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_SEQ = 2**63 - 1  # the largest sequence number or row id (int64): every backend holds it
MAX_INDEXED_BYTES = 1024  # keys, labels, ids: PostgreSQL's btree refuses entries over ~2700


def now() -> float:
    """Wall-clock time as stored (seconds since the epoch)."""
    return time.time()


def iso(timestamp: float | None) -> str | None:
    """ISO 8601 (UTC) form of a stored timestamp, as it goes on the wire."""
    seconds = readable_timestamp(timestamp)
    if seconds is None:  # nothing unreadable is written (check_timestamp); older rows may be
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


_PROVENANCE_NAMES = (("caller_key", "callerSessionKey"), ("parent_key", "parentSessionKey"))


@dataclass(frozen=True, slots=True)
class Provenance:
    """How a session came to exist."""

    origin: str
    entry_point: str | None = None
    caller_key: str | None = None
    parent_key: str | None = None
    # Every session up the spawn chain, parent first: whether a caller spawned this session,
    # however deeply, is one membership test (no walk whose length would show in the time).
    ancestors: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return wire_fields(self, ("ancestors",), _PROVENANCE_NAMES)


def new_incarnation() -> str:
    """A fresh incarnation id (a session's, when it is created or reset)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class NewSession:
    """What `ensure` needs to create a session that is missing.

    `decided_at` is when the creation was decided (the request's start): a key
    deleted at or after that time stays deleted (`SessionDeletedError`), so a
    creation decided before a delete never lands after it. None (start-up,
    repair) means a tombstone of any age refuses it.
    """

    key: str
    agent_id: str
    kind: str
    provenance: Provenance
    label: str | None = None
    decided_at: float | None = None

    def created(self, stamp: float) -> SessionRecord:
        """The session as it is first stored, at `stamp`, in a fresh incarnation."""
        return SessionRecord(self.key, self.agent_id, self.kind, SessionStatus.ACTIVE, self.label,
                             None, self.provenance, stamp, stamp, 0, new_incarnation())  # fmt: skip


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What appending to a transcript (or accepting or completing a run) stores.

    With `incarnation`, the write lands only in that incarnation of the session.
    """

    key: str
    role: str
    content: str
    run_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None  # None: when it is stored
    incarnation: str | None = None

    def stored(self, seq: int, stamp: float) -> MessageRecord:
        """The message as stored with sequence number `seq` at `stamp`."""
        return MessageRecord(self.key, seq, self.role, self.content, self.run_id,
                             self.created_at or stamp, self.meta)  # fmt: skip


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
    incarnation: str = ""  # changes when the session is created again or reset

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
class Tombstone:
    """What remains of a deleted key: when, by whom and why (never its transcript)."""

    key: str
    agent_id: str
    incarnation: str  # the incarnation that was deleted last
    deleted_at: float
    deleted_by: str | None
    reason: str | None
    deletions: int = 1  # how many times the key was deleted

    def to_wire(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "agentId": self.agent_id,
            "deletedAt": iso(self.deleted_at),
            "deletedBy": self.deleted_by,
            "reason": self.reason,
            "deletions": self.deletions,
        }


@dataclass(frozen=True, slots=True)
class Erasure:
    """What a delete removed."""

    tombstone: Tombstone
    messages: int
    runs: int
    archived_messages: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "sessionKey": self.tombstone.key,
            "deleted": True,
            "deletedAt": iso(self.tombstone.deleted_at),
            "messages": self.messages,
            "runs": self.runs,
            "archivedMessages": self.archived_messages,
        }


@dataclass(frozen=True, slots=True)
class ResetOutcome:
    """A reset: the fresh session, and what became of the old transcript and its runs."""

    session: SessionRecord
    archived: int  # messages kept in the archive
    deleted: int  # messages removed (a reset that deletes)
    interrupted: int  # runs in flight, which never finish into the fresh transcript

    def to_wire(self) -> dict[str, Any]:
        return {
            "sessionKey": self.session.key,
            "reset": True,
            "archivedMessages": self.archived,
            "deletedMessages": self.deleted,
            "interruptedRuns": self.interrupted,
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


def clamp_seq(value: int | None) -> int | None:
    """A sequence bound every backend can hold (a larger one means "no bound")."""
    return None if value is None else max(0, min(value, MAX_SEQ))


def check_storable(argument: str, value: str | None, *, indexed: bool = False) -> None:
    """Refuse text some backend cannot store, identically on every backend (`text_problem`;
    indexed columns hold at most MAX_INDEXED_BYTES)."""
    if value is None:
        return
    problem = text_problem(value, MAX_INDEXED_BYTES if indexed else None)
    if problem is not None:
        raise InvalidRequestError(
            f"{argument} {problem}; sessiongate does not store such text",
            details={"argument": argument},
        )


def check_new_session(new: NewSession | SessionRecord) -> None:
    """Apply `check_storable` to everything a new (or imported) session stores."""
    for argument, value in (("sessionKey", new.key), ("agentId", new.agent_id),
                            ("kind", new.kind), ("label", new.label)):  # fmt: skip
        check_storable(argument, value, indexed=True)
    p = new.provenance
    for argument, value in (("origin", p.origin), ("entryPoint", p.entry_point),
                            ("callerSessionKey", p.caller_key),
                            ("parentSessionKey", p.parent_key)):  # fmt: skip
        check_storable(argument, value)


def check_message(
    key: str, role: str, content: str, run_id: str | None, created_at: float | None = None
) -> None:
    """Apply `check_storable` to a message about to be appended, and `check_timestamp` to
    the time it is given (None: now)."""
    check_storable("sessionKey", key, indexed=True)
    check_storable("role", role, indexed=True)
    check_storable("message", content)
    check_storable("runId", run_id, indexed=True)
    if created_at is not None:
        check_timestamp("createdAt", created_at)


def check_import(session: SessionRecord, messages: list[MessageRecord]) -> None:
    """Apply `check_storable` and `check_timestamp` to a session and transcript about to be
    imported: nothing is written that a listing could not read back."""
    check_new_session(session)
    check_storable("aliasOf", session.alias_of, indexed=True)
    check_timestamp("createdAt", session.created_at)
    check_timestamp("updatedAt", session.updated_at)
    for m in messages:
        check_message(m.session_key, m.role, m.content, m.run_id, m.created_at)


def missing(key: str) -> SessionNotFoundError:
    """The error a store raises when asked to change a session that does not exist."""
    return SessionNotFoundError(f"no session {key!r}", details={"requestedKey": key})


def deleted(key: str, tombstone: Tombstone) -> SessionDeletedError:
    """The error for a key that was deleted (its tombstone's time, never who or why)."""
    return SessionDeletedError(
        f"session {key!r} was deleted at {iso(tombstone.deleted_at)}; nothing re-creates it"
        " by itself",
        details={"requestedKey": key, "canonicalKey": key, "deletedAt": iso(tombstone.deleted_at)},
    )


def reset_since(key: str) -> SessionResetError:
    """The error for a write into an incarnation of a session that was reset since."""
    return SessionResetError(
        f"session {key!r} was reset; nothing was stored in the fresh transcript",
        details={"requestedKey": key},
    )


def refused_over_tombstone(new: NewSession, tombstone: Tombstone | None) -> bool:
    """Whether a tombstone keeps `new` from being created (see `NewSession.decided_at`)."""
    if tombstone is None:
        return False
    return new.decided_at is None or tombstone.deleted_at >= new.decided_at


def refusal(
    key: str,
    incarnation: str | None,
    *,
    exists: bool,
    tombstone: Tombstone | None,
    alias_of: str | None = None,
) -> SessionGateError:
    """Why a write for `key` (in `incarnation`, if given) found no session to go into,
    the same on every backend: deleted, reset since, moved, or missing."""
    if not exists:
        return deleted(key, tombstone) if tombstone is not None else missing(key)
    if tombstone is not None and tombstone.incarnation == incarnation:
        return deleted(key, tombstone)  # deleted, then created again: not this one
    if alias_of is not None:
        return moved(key, alias_of)
    return reset_since(key) if incarnation is not None else missing(key)


def moved(key: str, target: str) -> SessionMovedError:
    """The error for a message to a session that now redirects elsewhere."""
    return SessionMovedError(
        f"session {key!r} now redirects to {target!r}; address it again",
        details={"requestedKey": key, "aliasOf": target},
    )


def store_timeout(store: str, seconds: float) -> StoreTimeoutError:
    """The error for a store call that outlived its deadline."""
    return StoreTimeoutError(
        f"the {store} store did not answer within {seconds:g}s",
        details={
            "store": store,
            "timeoutSeconds": seconds,
            "hint": "retry; a write that timed out may still have been stored "
            "(storage.timeoutSeconds sets the deadline)",
        },
    )


class SessionLookup(ABC):
    """Finding and creating sessions: all the resolver needs.

    Each public method checks its input once, here, for every backend; a backend
    implements only the storage step (`_find`, `_ensure`, …). Every step is atomic.
    """

    async def find(self, key: str) -> SessionRecord | None:
        """The session stored under this canonical key; None means it does not exist."""
        check_storable("sessionKey", key, indexed=True)
        return await self._find(key)

    async def find_by_label(self, label: str, agent_id: str | None) -> SessionRecord | None:
        """The newest active session with this label (of this agent, if given)."""
        check_storable("label", label, indexed=True)
        check_storable("agentId", agent_id, indexed=True)
        return await self._find_by_label(label, agent_id)

    async def ensure(self, new: NewSession) -> tuple[SessionRecord, bool]:
        """Create the session unless it exists; True only for the one caller that created it."""
        check_new_session(new)
        return await self._ensure(new)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        kind: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> SessionPage:
        """A page of sessions, newest first, filtered by agent and kind."""
        return await self._list(agent_id, kind, max(0, limit), decode_cursor(cursor))

    async def find_tombstone(self, key: str) -> Tombstone | None:
        """The tombstone of a deleted key (kept when the key is created again); None if never."""
        check_storable("sessionKey", key, indexed=True)
        return await self._find_tombstone(key)

    async def find_with_tombstone(
        self, key: str, *, always: bool = False
    ) -> tuple[SessionRecord | None, Tombstone | None]:
        """The session stored under `key` and the key's tombstone (None if never deleted), in
        one round trip where the backend can; the tombstone is read only on a miss unless
        `always` (a refusal and a hit then read alike)."""
        check_storable("sessionKey", key, indexed=True)
        return await self._find_with_tombstone(key, always)

    async def _find_with_tombstone(
        self, key: str, always: bool
    ) -> tuple[SessionRecord | None, Tombstone | None]:
        if always:
            record, tombstone = await asyncio.gather(self._find(key), self._find_tombstone(key))
            return record, tombstone
        record = await self._find(key)
        return record, None if record is not None else await self._find_tombstone(key)

    @abstractmethod
    async def _find(self, key: str) -> SessionRecord | None: ...

    @abstractmethod
    async def _find_by_label(self, label: str, agent_id: str | None) -> SessionRecord | None: ...

    @abstractmethod
    async def _ensure(self, new: NewSession) -> tuple[SessionRecord, bool]: ...

    @abstractmethod
    async def _list(
        self, agent_id: str | None, kind: str | None, limit: int, after: int | None
    ) -> SessionPage:
        """Up to `limit` sessions with a row id below `after` (None: from the newest)."""

    @abstractmethod
    async def _find_tombstone(self, key: str) -> Tombstone | None: ...


class Transcript(ABC):
    """The messages of a session, in order."""

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
        check_message(key, role, content, run_id, created_at)
        new = NewMessage(key, role, content, run_id, dict(meta or {}), created_at)
        return await self._append(new)

    async def history(
        self, key: str, *, limit: int = 50, before: int | None = None
    ) -> list[MessageRecord]:
        """The last `limit` messages (with seq below `before`), oldest first."""
        return await self._history(key, max(0, limit), clamp_seq(before))

    @abstractmethod
    async def _append(self, new: NewMessage) -> MessageRecord:
        """Store `new` as the session's next message; SessionNotFoundError if none."""

    @abstractmethod
    async def _history(self, key: str, limit: int, before: int | None) -> list[MessageRecord]: ...


def _inbound(
    key: str, content: str, run_id: str, meta: dict[str, Any] | None, incarnation: str | None
) -> NewMessage:
    """An inbound (user) message of run `run_id`, checked as every intake checks it."""
    check_message(key, "user", content, run_id)
    return NewMessage(key, "user", content, run_id, dict(meta or {}), None, incarnation)


class RunLedger(ABC):
    """Runs: accepted with their inbound message, ended with a reply or a failure."""

    async def accept_message(
        self,
        key: str,
        content: str,
        *,
        run_id: str,
        meta: dict[str, Any] | None = None,
        incarnation: str | None = None,
    ) -> tuple[MessageRecord, RunRecord]:
        """Append an inbound (user) message and record its run as running, in one transaction.

        SessionMovedError if the session now redirects (an alias was added since it
        was resolved); SessionDeletedError / SessionResetError if `incarnation` is
        given and no longer the session's; ConflictError if a run with this id
        exists. Nothing is stored then.
        """
        return await self._accept(_inbound(key, content, run_id, meta, incarnation))

    async def accept_with_history(
        self,
        key: str,
        content: str,
        *,
        run_id: str,
        history: int,
        meta: dict[str, Any] | None = None,
        incarnation: str | None = None,
    ) -> tuple[MessageRecord, RunRecord, list[MessageRecord] | None]:
        """`accept_message`, and the session's last `history` messages once it is stored
        (oldest first, the new one last), read in the same store call: the transcript of a
        run that starts now, without a second round trip.

        None for the messages where the backend reads none at intake (a store whose runs of
        a session are serialised across processes: another process's run may still add to
        the transcript before this run holds the session's lock); the run reads them then.
        Refuses as `accept_message` does, storing nothing.
        """
        new = _inbound(key, content, run_id, meta, incarnation)
        return await self._accept_with_history(new, max(0, history))

    async def _accept_with_history(
        self, new: NewMessage, limit: int
    ) -> tuple[MessageRecord, RunRecord, list[MessageRecord] | None]:
        """By default `_accept` alone, no messages read; a backend whose transcript only
        this process's lanes write overrides it with the read in the same call."""
        message, run = await self._accept(new)
        return message, run, None

    async def complete_run(
        self, key: str, run_id: str, reply: str, *, incarnation: str | None = None
    ) -> MessageRecord:
        """Append a run's reply and mark the run completed, in one transaction.

        With `incarnation` (the one the run was accepted into), a session deleted or
        reset since refuses the reply (SessionDeletedError / SessionResetError).
        """
        check_message(key, "assistant", reply, run_id)
        new = NewMessage(key, "assistant", reply, run_id, incarnation=incarnation)
        return await self._complete(new)

    answers_in_one_write: bool = False
    """Whether `accept_answered` stores the message, its run and the reply in one write that
    never waits for a run of another process: the run manager answers a runtime that
    replies without I/O (`AnswersAtOnce`) through it only then."""

    async def accept_answered(
        self,
        key: str,
        content: str,
        reply: str,
        *,
        run_id: str,
        meta: dict[str, Any] | None = None,
        incarnation: str | None = None,
    ) -> tuple[MessageRecord, RunRecord, MessageRecord] | None:
        """Store an inbound message (seq n), its run, already completed, and the run's reply
        (seq n + 1): the message, the run and the reply.

        Refuses as `accept_message` does (moved, deleted, reset, a run id that exists),
        storing nothing. None: nothing stored — the run must be run the normal way (a
        shared store may say so when another process is running a run of this session).
        """
        new = _inbound(key, content, run_id, meta, incarnation)
        check_storable("message", reply)
        answer = NewMessage(key, "assistant", reply, run_id, incarnation=incarnation)
        return await self._accept_answered(new, answer)

    async def _accept_answered(
        self, new: NewMessage, reply: NewMessage
    ) -> tuple[MessageRecord, RunRecord, MessageRecord] | None:
        """By default two writes, `_accept` then `_complete` (if the second fails, the message
        and its running run stay stored, as after `accept_message`); a backend that can
        overrides it with one transaction and sets `answers_in_one_write`."""
        message, run = await self._accept(new)
        stored = await self._complete(reply)
        completed = RunRecord(run.run_id, run.session_key, RunStatus.COMPLETED, run.created_at,
                              stored.created_at, None)  # fmt: skip
        return message, completed, stored

    @abstractmethod
    async def _accept(self, new: NewMessage) -> tuple[MessageRecord, RunRecord]:
        """Store the inbound message `new` and its run (`new.run_id`) as running, atomically."""

    @abstractmethod
    async def _complete(self, new: NewMessage) -> MessageRecord:
        """Store the reply `new` and mark its run completed, atomically."""

    @abstractmethod
    async def start_run(self, run_id: str, session_key: str) -> RunRecord:
        """Record a run as running."""

    @abstractmethod
    async def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Record a run's end: completed, failed or interrupted (an unknown run: no change)."""

    @abstractmethod
    async def find_run(self, run_id: str) -> RunRecord | None:
        """The run with this id; None means it does not exist."""

    @abstractmethod
    async def interrupt_running(self, *, own: bool = False) -> int:
        """Mark `running` runs of processes that are gone as interrupted; return how many.

        Called at start-up and periodically by a serving gateway (a peer process
        may have been killed); with `own`, on close, this store's own runs too.
        """


class SessionAdmin(ABC):
    """What doctor, the importer and the page change and count."""

    async def set_alias(self, key: str, target: str | None) -> None:
        """Redirect addresses of `key` to `target` (None removes the redirect)."""
        check_storable("aliasOf", target, indexed=True)
        await self._update(key, "alias_of", target)

    async def set_status(self, key: str, status: str) -> None:
        """Mark a session active, archived or quarantined."""
        if status not in SessionStatus.__members__.values():
            raise InvalidRequestError(
                f"unknown session status {status!r:.40}", details={"argument": "status"}
            )
        await self._update(key, "status", str(status))

    async def set_label(self, key: str, label: str | None) -> None:
        """Give a session a label (None removes it)."""
        check_storable("label", label, indexed=True)
        await self._update(key, "label", label)

    async def import_session(
        self,
        session: SessionRecord,
        messages: list[MessageRecord],
        *,
        over_tombstone: bool = False,
    ) -> bool:
        """Insert a session and its transcript as they were (bulk import); False if present,
        or if the key was deleted (unless `over_tombstone`)."""
        check_import(session, messages)
        return await self._import(session, messages, over_tombstone)

    @abstractmethod
    async def _update(self, key: str, column: str, value: str | None) -> None:
        """Set one column of a session (and its updated_at); SessionNotFoundError if none."""

    @abstractmethod
    async def _import(
        self, session: SessionRecord, messages: list[MessageRecord], over_tombstone: bool
    ) -> bool: ...

    @abstractmethod
    async def count_sessions(self) -> int:
        """How many sessions are stored."""

    @abstractmethod
    async def count_by_origin(self) -> dict[str, int]:
        """How many sessions each origin created (startup, address, spawn, …)."""

    @abstractmethod
    async def aliases_of(self, key: str) -> list[str]:
        """The keys whose alias redirects to `key`, sorted."""


class SessionLifecycle(ABC):
    """Deliberate removal: each call is one transaction, atomic against every write above."""

    async def delete_session(self, key: str, *, by: str | None, reason: str | None) -> Erasure:
        """Erase a session: its transcript, archived transcripts and runs; leave a tombstone.

        SessionNotFoundError if there is no session (SessionDeletedError if it was
        deleted already). Afterwards no write for any earlier incarnation lands.
        """
        _check_removal(key, by, reason)
        return await self._delete(key, by, reason)

    async def reset_session(
        self, key: str, *, archive: bool, by: str | None, reason: str | None
    ) -> ResetOutcome:
        """Give the session a fresh, empty transcript and a new incarnation.

        The old transcript is archived (kept, not listed) or, with `archive`
        False, deleted; runs in flight are marked interrupted and can never
        complete into the fresh transcript.
        """
        _check_removal(key, by, reason)
        return await self._reset(key, archive, by, reason)

    async def list_tombstones(self, *, limit: int = 1000) -> list[Tombstone]:
        """Tombstones, newest deletion first."""
        return await self._list_tombstones(max(0, limit))

    async def import_tombstone(self, tombstone: Tombstone) -> bool:
        """Keep a tombstone as it was (`storage migrate`); False if the key has one already."""
        _check_removal(tombstone.key, tombstone.deleted_by, tombstone.reason)
        check_storable("agentId", tombstone.agent_id, indexed=True)
        check_storable("incarnation", tombstone.incarnation, indexed=True)
        return await self._import_tombstone(tombstone)

    @abstractmethod
    async def _import_tombstone(self, tombstone: Tombstone) -> bool: ...

    @abstractmethod
    async def _delete(self, key: str, by: str | None, reason: str | None) -> Erasure: ...

    @abstractmethod
    async def _reset(
        self, key: str, archive: bool, by: str | None, reason: str | None
    ) -> ResetOutcome: ...

    @abstractmethod
    async def _list_tombstones(self, limit: int) -> list[Tombstone]: ...


def _check_removal(key: str, by: str | None, reason: str | None) -> None:
    check_storable("sessionKey", key, indexed=True)
    check_storable("deletedBy", by)
    check_storable("reason", reason)


class Coordination(ABC):
    """What the gateway processes sharing one store coordinate through it."""

    @abstractmethod
    def session_lock(self, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Held while a run of `key` executes: one run per session, across processes."""

    @abstractmethod
    async def publish_events(self, events: list[dict[str, Any]]) -> None:
        """Tell the other gateway processes sharing this store about run events, in order."""

    @abstractmethod
    async def listen_events(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Deliver run events published by other processes to `listener`."""

    @abstractmethod
    def exclusive(self, name: str) -> contextlib.AbstractAsyncContextManager[bool]:
        """Try to hold the store-wide lock `name` (never waits): True inside when this
        process holds it, False when another does (e.g. the retention janitor)."""


class SingleProcessCoordination(Coordination):
    """A store only one gateway process serves from: its lanes already serialise runs,
    and its own listeners already have every event."""

    def session_lock(self, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def publish_events(self, events: list[dict[str, Any]]) -> None:
        return None

    async def listen_events(self, listener: Callable[[dict[str, Any]], None]) -> None:
        return None


class PageSessions(ABC):
    """The control page's signed-in browsers, kept with the state so that a sign-out holds
    in every gateway process sharing it (a signed cookie alone cannot be taken back)."""

    @abstractmethod
    async def open_page_session(self, session_id: str, expires_at: float) -> None:
        """Record a sign-in until `expires_at` (and forget the expired ones)."""

    @abstractmethod
    async def page_session_open(self, session_id: str) -> bool:
        """Whether `session_id` is signed in: recorded, not signed out, not expired."""

    @abstractmethod
    async def close_page_session(self, session_id: str | None) -> None:
        """Sign `session_id` out; None signs every page out."""


class SessionStore(
    SessionLookup,
    Transcript,
    RunLedger,
    SessionAdmin,
    SessionLifecycle,
    Coordination,
    PageSessions,
):
    """A whole backend: every interface above, plus what opening and probing it needs."""

    shared: bool = False  # whether several gateway processes may serve from this store at once

    @abstractmethod
    async def ping(self) -> None:
        """Prove, within a short deadline, that the store answers and can write; else raise."""

    async def mark_serving(self) -> None:
        """Let others see that a gateway serves from this store (until close)."""

    async def served_elsewhere(self) -> bool:
        """Whether another process serves a gateway from this store right now."""
        return False

    async def heal(self) -> None:
        """Re-establish what a long-lived connection may have lost (the janitor calls this)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""
