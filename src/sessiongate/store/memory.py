"""In-memory `SessionStore`: for tests and throwaway gateways (nothing survives a restart)."""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter

from sessiongate.errors import ConflictError
from sessiongate.store.base import (
    MessageRecord,
    NewMessage,
    NewSession,
    RunRecord,
    RunStatus,
    SessionPage,
    SessionRecord,
    SessionStatus,
    SessionStore,
    SingleProcessCoordination,
    encode_cursor,
    missing,
    moved,
    now,
)

__all__ = ["MemorySessionStore"]


class MemorySessionStore(SingleProcessCoordination, SessionStore):
    """Dicts and lists; every step runs without awaiting, so each is atomic."""

    shared = False

    def __init__(self) -> None:
        self._sessions: dict[str, SessionRecord] = {}
        self._order: list[tuple[int, str]] = []
        self._messages: dict[str, list[MessageRecord]] = {}
        self._runs: dict[str, RunRecord] = {}

    async def _find(self, key: str) -> SessionRecord | None:
        return self._sessions.get(key)

    async def _find_by_label(self, label: str, agent_id: str | None) -> SessionRecord | None:
        for _, key in reversed(self._order):
            record = self._sessions[key]
            wanted_agent = agent_id is None or record.agent_id == agent_id
            if record.label == label and record.status == SessionStatus.ACTIVE and wanted_agent:
                return record
        return None

    async def _ensure(self, new: NewSession) -> tuple[SessionRecord, bool]:
        existing = self._sessions.get(new.key)
        if existing is not None:
            return existing, False
        record = new.created(now())
        self._add(record, [])
        return record, True

    def _add(self, record: SessionRecord, messages: list[MessageRecord]) -> None:
        self._sessions[record.key] = record
        self._order.append((len(self._order) + 1, record.key))
        self._messages[record.key] = messages

    async def _list(
        self, agent_id: str | None, kind: str | None, limit: int, after: int | None
    ) -> SessionPage:
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

    async def _append(self, new: NewMessage) -> MessageRecord:
        record = self._sessions.get(new.key)
        if record is None:
            raise missing(new.key)
        stamp = now()
        message = new.stored(record.last_seq + 1, stamp)
        self._messages[new.key].append(message)
        self._sessions[new.key] = dataclasses.replace(
            record, last_seq=message.seq, updated_at=stamp
        )
        return message

    async def _history(self, key: str, limit: int, before: int | None) -> list[MessageRecord]:
        messages = self._messages.get(key, [])
        end = len(messages) if before is None else max(0, min(before - 1, len(messages)))
        return messages[max(0, end - limit) : end]

    async def _update(self, key: str, column: str, value: str | None) -> None:
        record = self._sessions.get(key)
        if record is None:
            raise missing(key)
        if column == "status":
            record = dataclasses.replace(record, status=str(value))
        else:
            record = dataclasses.replace(record, alias_of=value)
        self._sessions[key] = dataclasses.replace(record, updated_at=now())

    async def start_run(self, run_id: str, session_key: str) -> RunRecord:
        run = RunRecord(run_id, session_key, RunStatus.RUNNING, now(), None, None)
        self._runs[run_id] = run
        return run

    async def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return  # as on the SQL stores: ending an unknown run changes nothing
        self._runs[run_id] = dataclasses.replace(run, status=status, finished_at=now(), error=error)

    async def _accept(self, new: NewMessage) -> tuple[MessageRecord, RunRecord]:
        record, run_id = self._sessions.get(new.key), str(new.run_id)
        if record is not None and record.alias_of is not None:
            raise moved(new.key, record.alias_of)
        if run_id in self._runs:  # as the SQL stores' primary key refuses it
            raise ConflictError(f"run {run_id} exists", details={"runId": run_id})
        message = await self._append(new)
        return message, await self.start_run(run_id, new.key)

    async def _complete(self, new: NewMessage) -> MessageRecord:
        message = await self._append(new)
        await self.finish_run(str(new.run_id), RunStatus.COMPLETED)
        return message

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

    async def _import(self, session: SessionRecord, messages: list[MessageRecord]) -> bool:
        if session.key in self._sessions:
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

    async def close(self) -> None:
        return None
