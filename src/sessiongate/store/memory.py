"""In-memory `SessionStore`: for tests and throwaway gateways (nothing survives a restart)."""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator

from sessiongate.errors import ConflictError
from sessiongate.store import base

__all__ = ["MemorySessionStore"]


class MemorySessionStore(base.SingleProcessCoordination, base.SessionStore):
    """Dicts and lists; every step runs without awaiting, so each is atomic."""

    shared = False
    answers_in_one_write = True  # every step is atomic (nothing here awaits)

    def __init__(self) -> None:
        self._sessions: dict[str, base.SessionRecord] = {}
        self._order: list[tuple[int, str]] = []
        self._messages: dict[str, list[base.MessageRecord]] = {}
        self._runs: dict[str, base.RunRecord] = {}
        self._tombstones: dict[str, base.Tombstone] = {}
        self._last_row_id = 0
        self._held: set[str] = set()
        self._archived: dict[str, list[base.MessageRecord]] = {}
        self._page_sessions: dict[str, float] = {}

    async def _find(self, key: str) -> base.SessionRecord | None:
        return self._sessions.get(key)

    async def _find_by_label(self, label: str, agent_id: str | None) -> base.SessionRecord | None:
        for _, key in reversed(self._order):
            record = self._sessions[key]
            wanted_agent = agent_id is None or record.agent_id == agent_id
            if (
                record.label == label
                and record.status == base.SessionStatus.ACTIVE
                and wanted_agent
            ):
                return record
        return None

    async def _ensure(self, new: base.NewSession) -> tuple[base.SessionRecord, bool]:
        existing = self._sessions.get(new.key)
        if existing is not None:
            return existing, False
        tombstone = self._tombstones.get(new.key)
        if base.refused_over_tombstone(new, tombstone):
            assert tombstone is not None
            raise base.deleted(new.key, tombstone)
        record = new.created(base.now())
        self._add(record, [])
        return record, True

    def _add(self, record: base.SessionRecord, messages: list[base.MessageRecord]) -> None:
        # row ids only grow (a deleted session's id is never given again), as in SQL
        self._last_row_id += 1
        self._sessions[record.key] = record
        self._order.append((self._last_row_id, record.key))
        self._messages[record.key] = messages

    async def _list(
        self, agent_id: str | None, kind: str | None, limit: int, after: int | None
    ) -> base.SessionPage:
        end = len(self._order) if after is None else bisect.bisect_left(self._order, (after, ""))
        page: list[base.SessionRecord] = []
        last_id = 0
        for index in range(end - 1, -1, -1):
            row_id, key = self._order[index]
            record = self._sessions[key]
            if (agent_id and record.agent_id != agent_id) or (kind and record.kind != kind):
                continue
            if len(page) == limit:
                return base.SessionPage(page, base.encode_cursor(last_id))
            page.append(record)
            last_id = row_id
        return base.SessionPage(page, None)

    async def _append(self, new: base.NewMessage) -> base.MessageRecord:
        record = self._live(new.key, new.incarnation)
        stamp = base.now()
        message = new.stored(record.last_seq + 1, stamp)
        self._messages[new.key].append(message)
        self._sessions[new.key] = dataclasses.replace(
            record, last_seq=message.seq, updated_at=stamp
        )
        return message

    def _live(self, key: str, incarnation: str | None) -> base.SessionRecord:
        """The session a write for `key` (in `incarnation`, if given) goes into."""
        record = self._sessions.get(key)
        if record is None or (incarnation is not None and record.incarnation != incarnation):
            raise self._refusal(key, incarnation)
        return record

    async def _history(self, key: str, limit: int, before: int | None) -> list[base.MessageRecord]:
        messages = self._messages.get(key, [])
        end = len(messages) if before is None else max(0, min(before - 1, len(messages)))
        return messages[max(0, end - limit) : end]

    def _refusal(self, key: str, incarnation: str | None) -> Exception:
        """Why a write for `key` (in `incarnation`, if given) found no session to go into."""
        exists, tombstone = key in self._sessions, self._tombstones.get(key)
        return base.refusal(key, incarnation, exists=exists, tombstone=tombstone)

    async def _update(self, key: str, column: str, value: str | None) -> None:
        record = self._live(key, None)
        if column == "status":
            record = dataclasses.replace(record, status=str(value))
        elif column == "label":
            record = dataclasses.replace(record, label=value)
        else:
            record = dataclasses.replace(record, alias_of=value)
        self._sessions[key] = dataclasses.replace(record, updated_at=base.now())

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

    async def start_run(self, run_id: str, session_key: str) -> base.RunRecord:
        run = base.RunRecord(run_id, session_key, base.RunStatus.RUNNING, base.now(), None, None)
        self._runs[run_id] = run
        return run

    async def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return  # as on the SQL stores: ending an unknown run changes nothing
        self._runs[run_id] = dataclasses.replace(
            run, status=status, finished_at=base.now(), error=error
        )

    async def _accept(self, new: base.NewMessage) -> tuple[base.MessageRecord, base.RunRecord]:
        record, run_id = self._live(new.key, new.incarnation), str(new.run_id)
        if record.alias_of is not None:
            raise base.moved(new.key, record.alias_of)
        if run_id in self._runs:  # as the SQL stores' primary key refuses it
            raise ConflictError(f"run {run_id} exists", details={"runId": run_id})
        message = await self._append(new)
        return message, await self.start_run(run_id, new.key)

    async def _accept_with_history(
        self, new: base.NewMessage, limit: int
    ) -> tuple[base.MessageRecord, base.RunRecord, list[base.MessageRecord] | None]:
        message, run = await self._accept(new)  # no await suspends: one step with the read
        return message, run, await self._history(new.key, limit, None)

    async def _complete(self, new: base.NewMessage) -> base.MessageRecord:
        message = await self._append(new)
        await self.finish_run(str(new.run_id), base.RunStatus.COMPLETED)
        return message

    async def _accept_answered(
        self, new: base.NewMessage, reply: base.NewMessage
    ) -> tuple[base.MessageRecord, base.RunRecord, base.MessageRecord]:
        message, run = await self._accept(new)  # no await suspends here: one atomic step
        answer = await self._append(reply)
        completed = dataclasses.replace(
            run, status=base.RunStatus.COMPLETED, finished_at=answer.created_at
        )
        self._runs[completed.run_id] = completed
        return message, completed, answer

    async def _find_tombstone(self, key: str) -> base.Tombstone | None:
        return self._tombstones.get(key)

    async def _list_tombstones(self, limit: int) -> list[base.Tombstone]:
        newest = sorted(self._tombstones.values(), key=lambda t: t.deleted_at, reverse=True)
        return newest[:limit]

    async def _import_tombstone(self, tombstone: base.Tombstone) -> bool:
        if tombstone.key in self._tombstones:
            return False
        self._tombstones[tombstone.key] = tombstone
        return True

    async def _delete(self, key: str, by: str | None, reason: str | None) -> base.Erasure:
        record = self._sessions.pop(key, None)
        if record is None:
            raise self._refusal(key, None)
        self._order = [(row_id, k) for row_id, k in self._order if k != key]
        messages = len(self._messages.pop(key, []))
        archived = len(self._archived.pop(key, []))
        runs = [r for r in self._runs.values() if r.session_key == key]
        for run in runs:
            del self._runs[run.run_id]
        before = self._tombstones.get(key)
        tombstone = base.Tombstone(key, record.agent_id, record.incarnation, base.now(), by, reason,
                              before.deletions + 1 if before else 1)  # fmt: skip
        self._tombstones[key] = tombstone
        return base.Erasure(tombstone, messages, len(runs), archived)

    async def _reset(
        self, key: str, archive: bool, by: str | None, reason: str | None
    ) -> base.ResetOutcome:
        record = self._live(key, None)
        old = self._messages[key]
        if archive:
            self._archived.setdefault(key, []).extend(old)
        self._messages[key] = []
        interrupted = 0
        for run in [r for r in self._runs.values() if r.session_key == key]:
            if run.status == base.RunStatus.RUNNING:
                await self.finish_run(
                    run.run_id, base.RunStatus.INTERRUPTED, "the session was reset"
                )
                interrupted += 1
        fresh = dataclasses.replace(
            record, incarnation=base.new_incarnation(), last_seq=0,
            status=base.SessionStatus.ACTIVE, updated_at=base.now(),
        )  # fmt: skip
        self._sessions[key] = fresh
        kept = len(old) if archive else 0
        return base.ResetOutcome(fresh, kept, len(old) - kept, interrupted)

    async def find_run(self, run_id: str) -> base.RunRecord | None:
        return self._runs.get(run_id)

    async def interrupt_running(self, *, own: bool = False) -> int:
        if not own:
            return 0  # every run here belongs to this process, which is alive
        running = [r for r in self._runs.values() if r.status == base.RunStatus.RUNNING]
        for run in running:
            stopped = "gateway stopped during the run"
            await self.finish_run(run.run_id, base.RunStatus.INTERRUPTED, stopped)
        return len(running)

    async def _import(
        self, session: base.SessionRecord, messages: list[base.MessageRecord], over_tombstone: bool
    ) -> bool:
        if session.key in self._sessions:
            return False
        if session.key in self._tombstones and not over_tombstone:
            return False
        self._add(session, list(messages))
        return True

    async def count_sessions(self) -> int:
        return len(self._sessions)

    async def count_by_origin(self) -> dict[str, int]:
        return dict(Counter(s.provenance.origin for s in self._sessions.values()))

    async def aliases_of(self, key: str) -> list[str]:
        return sorted(k for k, s in self._sessions.items() if s.alias_of == key)

    async def ping(self) -> None:
        """Memory always answers."""

    async def open_page_session(self, session_id: str, expires_at: float) -> None:
        stamp = base.now()
        self._page_sessions = {
            sid: until for sid, until in self._page_sessions.items() if until > stamp
        }
        self._page_sessions[session_id] = expires_at

    async def page_session_open(self, session_id: str) -> bool:
        return self._page_sessions.get(session_id, 0.0) > base.now()

    async def close_page_session(self, session_id: str | None) -> None:
        if session_id is None:
            self._page_sessions.clear()
        else:
            self._page_sessions.pop(session_id, None)

    async def close(self) -> None:
        return None
