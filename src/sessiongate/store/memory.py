"""In-memory `SessionStore`: for tests and throwaway gateways (nothing survives a restart)."""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from sessiongate.errors import ConflictError
from sessiongate.store.base import (
    Erasure,
    MessageRecord,
    NewSession,
    ResetOutcome,
    RunRecord,
    RunStatus,
    SessionPage,
    SessionRecord,
    SessionStatus,
    Tombstone,
    check_import,
    check_message,
    check_new_session,
    check_storable,
    clamp_seq,
    decode_cursor,
    deleted,
    encode_cursor,
    missing,
    moved,
    new_incarnation,
    now,
    refused_over_tombstone,
    reset_since,
)

__all__ = ["MemorySessionStore"]


class MemorySessionStore:
    """Dicts and lists; every method runs without awaiting, so each is atomic."""

    shared = False

    def __init__(self) -> None:
        self._sessions: dict[str, SessionRecord] = {}
        self._row_ids: dict[str, int] = {}
        self._order: list[tuple[int, str]] = []
        self._messages: dict[str, list[MessageRecord]] = {}
        self._runs: dict[str, RunRecord] = {}
        self._tombstones: dict[str, Tombstone] = {}
        self._last_row_id = 0
        self._held: set[str] = set()
        self._archived: dict[str, list[MessageRecord]] = {}

    async def find(self, key: str) -> SessionRecord | None:
        check_storable("sessionKey", key, indexed=True)
        return self._sessions.get(key)

    async def find_by_label(self, label: str, agent_id: str | None) -> SessionRecord | None:
        check_storable("label", label, indexed=True)
        check_storable("agentId", agent_id, indexed=True)
        for _, key in reversed(self._order):
            record = self._sessions[key]
            wanted_agent = agent_id is None or record.agent_id == agent_id
            if record.label == label and record.status == SessionStatus.ACTIVE and wanted_agent:
                return record
        return None

    async def ensure(self, new: NewSession) -> tuple[SessionRecord, bool]:
        check_new_session(new)
        existing = self._sessions.get(new.key)
        if existing is not None:
            return existing, False
        tombstone = self._tombstones.get(new.key)
        if refused_over_tombstone(new, tombstone):
            assert tombstone is not None
            raise deleted(new.key, tombstone)
        stamp = now()
        record = SessionRecord(
            new.key,
            new.agent_id,
            new.kind,
            SessionStatus.ACTIVE,
            new.label,
            None,
            new.provenance,
            stamp,
            stamp,
            0,
            new_incarnation(),
        )
        row_id = self._next_row_id()
        self._sessions[new.key] = record
        self._row_ids[new.key] = row_id
        self._order.append((row_id, new.key))
        self._messages[new.key] = []
        return record, True

    def _next_row_id(self) -> int:
        """Row ids only grow (a deleted session's id is never given again), as in SQL."""
        self._last_row_id += 1
        return self._last_row_id

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        after = decode_cursor(cursor)
        end = len(self._order) if after is None else bisect.bisect_left(self._order, (after, ""))
        page: list[SessionRecord] = []
        last_id = 0
        for index in range(end - 1, -1, -1):
            row_id, key = self._order[index]
            record = self._sessions[key]
            if (agent_id and record.agent_id != agent_id) or (kind and record.kind != kind):
                continue
            if len(page) == limit:
                return SessionPage(page, encode_cursor(last_id))
            page.append(record)
            last_id = row_id
        return SessionPage(page, None)

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
        check_message(key, role, content, run_id)
        return self._append(key, role, content, run_id, meta, created_at, None)

    def _append(
        self,
        key: str,
        role: str,
        content: str,
        run_id: str | None,
        meta: dict[str, Any] | None,
        created_at: float | None,
        incarnation: str | None,
    ) -> MessageRecord:
        record = self._sessions.get(key)
        if record is None or (incarnation is not None and record.incarnation != incarnation):
            raise self._refusal(key, incarnation)
        stamp = now()
        message = MessageRecord(
            key, record.last_seq + 1, role, content, run_id, created_at or stamp, dict(meta or {})
        )
        self._messages[key].append(message)
        self._sessions[key] = dataclasses.replace(record, last_seq=message.seq, updated_at=stamp)
        return message

    async def history(
        self, key: str, *, limit: int = 50, before: int | None = None
    ) -> list[MessageRecord]:
        messages = self._messages.get(key, [])
        before = clamp_seq(before)
        end = len(messages) if before is None else max(0, min(before - 1, len(messages)))
        return messages[max(0, end - limit) : end]

    async def set_alias(self, key: str, target: str | None) -> None:
        check_storable("aliasOf", target, indexed=True)
        self._update(key, alias_of=target)

    async def set_status(self, key: str, status: str) -> None:
        self._update(key, status=status)

    async def set_label(self, key: str, label: str | None) -> None:
        check_storable("label", label, indexed=True)
        self._update(key, label=label)

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """One process: held unless this store already holds it."""
        if name in self._held:
            yield False
            return
        self._held.add(name)
        try:
            yield True
        finally:
            self._held.discard(name)

    def _refusal(self, key: str, incarnation: str | None) -> Exception:
        """Why a write for `key` (in `incarnation`, if given) found no session to go into."""
        tombstone = self._tombstones.get(key)
        if key not in self._sessions:
            return deleted(key, tombstone) if tombstone is not None else missing(key)
        if tombstone is not None and tombstone.incarnation == incarnation:
            return deleted(key, tombstone)
        return reset_since(key)

    def _update(self, key: str, **changes: Any) -> None:
        record = self._sessions.get(key)
        if record is None:
            raise self._refusal(key, None)
        self._sessions[key] = dataclasses.replace(record, updated_at=now(), **changes)

    async def start_run(self, run_id: str, session_key: str) -> RunRecord:
        run = RunRecord(run_id, session_key, RunStatus.RUNNING, now(), None, None)
        self._runs[run_id] = run
        return run

    async def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return  # as on the SQL stores: ending an unknown run changes nothing
        self._runs[run_id] = dataclasses.replace(run, status=status, finished_at=now(), error=error)

    async def accept_message(
        self,
        key: str,
        content: str,
        *,
        run_id: str,
        meta: dict[str, Any] | None = None,
        incarnation: str | None = None,
    ) -> tuple[MessageRecord, RunRecord]:
        check_message(key, "user", content, run_id)
        record = self._sessions.get(key)
        if record is None or (incarnation is not None and record.incarnation != incarnation):
            raise self._refusal(key, incarnation)
        if record.alias_of is not None:
            raise moved(key, record.alias_of)
        if run_id in self._runs:  # as the SQL stores' primary key refuses it
            raise ConflictError(f"run {run_id} exists", details={"runId": run_id})
        message = self._append(key, "user", content, run_id, meta, None, incarnation)
        return message, await self.start_run(run_id, key)

    async def complete_run(
        self, key: str, run_id: str, reply: str, *, incarnation: str | None = None
    ) -> MessageRecord:
        check_message(key, "assistant", reply, run_id)
        message = self._append(key, "assistant", reply, run_id, None, None, incarnation)
        await self.finish_run(run_id, RunStatus.COMPLETED)
        return message

    async def find_tombstone(self, key: str) -> Tombstone | None:
        check_storable("sessionKey", key, indexed=True)
        return self._tombstones.get(key)

    async def list_tombstones(self, *, limit: int = 1000) -> list[Tombstone]:
        newest = sorted(self._tombstones.values(), key=lambda t: t.deleted_at, reverse=True)
        return newest[:limit]

    async def delete_session(self, key: str, *, by: str | None, reason: str | None) -> Erasure:
        check_storable("sessionKey", key, indexed=True)
        check_storable("deletedBy", by)
        check_storable("reason", reason)
        record = self._sessions.pop(key, None)
        if record is None:
            raise self._refusal(key, None)
        del self._row_ids[key]
        self._order = [(row_id, k) for row_id, k in self._order if k != key]
        messages = len(self._messages.pop(key, []))
        archived = len(self._archived.pop(key, []))
        runs = [r for r in self._runs.values() if r.session_key == key]
        for run in runs:
            del self._runs[run.run_id]
        before = self._tombstones.get(key)
        tombstone = Tombstone(key, record.agent_id, record.incarnation, now(), by, reason,
                              before.deletions + 1 if before else 1)  # fmt: skip
        self._tombstones[key] = tombstone
        return Erasure(tombstone, messages, len(runs), archived)

    async def reset_session(
        self, key: str, *, archive: bool, by: str | None, reason: str | None
    ) -> ResetOutcome:
        check_storable("sessionKey", key, indexed=True)
        record = self._sessions.get(key)
        if record is None:
            raise self._refusal(key, None)
        old = self._messages[key]
        if archive:
            self._archived.setdefault(key, []).extend(old)
        self._messages[key] = []
        interrupted = 0
        for run in [r for r in self._runs.values() if r.session_key == key]:
            if run.status == "running":
                await self.finish_run(run.run_id, "interrupted", "the session was reset")
                interrupted += 1
        fresh = dataclasses.replace(record, incarnation=new_incarnation(), last_seq=0,
                                    status="active", updated_at=now())  # fmt: skip
        self._sessions[key] = fresh
        kept = len(old) if archive else 0
        return ResetOutcome(fresh, kept, len(old) - kept, interrupted)

    async def find_run(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    async def interrupt_running(self, *, own: bool = False) -> int:
        if not own:
            return 0  # every run here belongs to this process, which is alive
        running = [r for r in self._runs.values() if r.status == RunStatus.RUNNING]
        for run in running:
            stopped = "gateway stopped during the run"
            await self.finish_run(run.run_id, RunStatus.INTERRUPTED, stopped)
        return len(running)

    def session_lock(self, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Runs of one session are already serialised by this process's lanes."""
        return contextlib.nullcontext()

    async def import_session(
        self,
        session: SessionRecord,
        messages: list[MessageRecord],
        *,
        over_tombstone: bool = False,
    ) -> bool:
        check_import(session, messages)
        if session.key in self._sessions:
            return False
        if session.key in self._tombstones and not over_tombstone:
            return False
        row_id = self._next_row_id()
        self._sessions[session.key] = session
        self._row_ids[session.key] = row_id
        self._order.append((row_id, session.key))
        self._messages[session.key] = list(messages)
        return True

    async def publish_events(self, events: list[dict[str, Any]]) -> None:
        """One process per store: its own listeners already have the event."""

    async def listen_events(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """No other process publishes into this store."""

    async def count_sessions(self) -> int:
        return len(self._sessions)

    async def count_by_origin(self) -> dict[str, int]:
        return dict(Counter(s.provenance.origin for s in self._sessions.values()))

    async def aliases_of(self, key: str) -> list[str]:
        return sorted(k for k, s in self._sessions.items() if s.alias_of == key)

    async def ping(self) -> None:
        """Memory always answers."""

    async def mark_serving(self) -> None:
        """No other process can see this store."""

    async def served_elsewhere(self) -> bool:
        return False

    async def close(self) -> None:
        return None
