"""Copy an OpenClaw state dir's sessions and transcripts into a sessiongate store.

Each ``agents/<id>/sessions/sessions.json`` entry becomes one session: its key
canonicalised, origin ``imported`` (entry point ``openclaw``), its times kept,
and the transcript's user / assistant / system / tool-result messages in file
order with their own times. Inter-session provenance becomes the message's
``caller`` (and the sending tool its ``entryPoint``), as a native send records
it; the channel and the OpenClaw ids (session id, entry id) go in ``meta``.

Re-running is safe: a session already in the store only receives the messages
it does not have yet (matched by OpenClaw session id and entry id). A damaged
or missing transcript, an unreadable index, a key that does not parse or an
agent that is not configured is a *problem*: reported by path (and line) and
skipped, never stopping the import. Transcripts no index entry points to are
*orphans*: listed, not imported. Nothing is ever written under the state dir.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessiongate.config import SessionGateConfig
from sessiongate.errors import InvalidRequestError, InvalidSessionKeyError
from sessiongate.keys import canonical_session_key, parse_session_key
from sessiongate.openclaw.store_files import (
    OUTSIDE,
    OpenClawFileError,
    TranscriptMessage,
    Where,
    agent_dirs,
    epoch_seconds,
    find_orphans,
    inside,
    locate_transcript,
    read_index,
    read_transcript,
)
from sessiongate.store.base import (
    MessageRecord,
    Origin,
    Provenance,
    SessionRecord,
    SessionStatus,
    SessionStore,
    now,
)

__all__ = ["ImportProblem", "ImportReport", "OpenClawImporter"]

WORKERS = 16
Started = Callable[[int], None]
Advance = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """Something that was skipped, and where to look."""

    path: str
    line: int | None
    reason: str
    session_key: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def to_wire(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "reason": self.reason,
                "sessionKey": self.session_key}  # fmt: skip


@dataclass(slots=True)
class AgentTally:
    """What happened to one agent's index entries."""

    entries: int = 0
    imported: int = 0  # new sessions
    updated: int = 0  # sessions that were there and received messages they lacked
    unchanged: int = 0  # sessions that were there with every message
    skipped: int = 0  # problems
    messages: int = 0  # messages written (or, with --dry-run, that would be)
    deleted: int = 0  # sessions deleted here (tombstoned): left alone unless told

    def to_wire(self) -> dict[str, int]:
        return {"entries": self.entries, "imported": self.imported, "updated": self.updated,
                "unchanged": self.unchanged, "skipped": self.skipped,
                "messages": self.messages, "deleted": self.deleted}  # fmt: skip


@dataclass(slots=True)
class ImportReport:
    state_dir: str
    dry_run: bool
    agents: dict[str, AgentTally] = field(default_factory=dict)
    problems: list[ImportProblem] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    sidecars_ignored: int = 0
    seconds: float = 0.0

    @property
    def messages(self) -> int:
        return sum(t.messages for t in self.agents.values())

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def to_wire(self) -> dict[str, Any]:
        return {
            "stateDir": self.state_dir,
            "dryRun": self.dry_run,
            "agents": {agent: tally.to_wire() for agent, tally in self.agents.items()},
            "messages": self.messages,
            "problems": [p.to_wire() for p in self.problems],
            "orphans": self.orphans,
            "sidecarsIgnored": self.sidecars_ignored,
            "seconds": round(self.seconds, 3),
            "messagesPerSecond": round(self.messages_per_second, 1),
        }


@dataclass(frozen=True, slots=True)
class _Planned:
    """One index entry read and checked: the session to write and its messages."""

    record: SessionRecord
    messages: list[TranscriptMessage]
    transcript: Path


@dataclass(slots=True)
class _AgentIndex:
    agent_id: str
    sessions_dir: Path
    entries: dict[str, Any]
    referenced: set[Path] = field(default_factory=set)


class OpenClawImporter:
    """Reads an OpenClaw state dir and writes what it finds into `store`."""

    def __init__(
        self,
        store: SessionStore,
        config: SessionGateConfig,
        *,
        dry_run: bool = False,
        started: Started | None = None,
        advance: Advance | None = None,
        allow_outside: Sequence[Path] = (),
        include_deleted: bool = False,
    ) -> None:
        self.store = store
        self.allow_outside = [p.expanduser().resolve() for p in allow_outside]
        self._roots: list[Path] = []
        self.config = config
        self.dry_run = dry_run
        self.include_deleted = include_deleted  # import keys deleted here too
        self._started = started or (lambda _: None)
        self._advance = advance or (lambda _: None)

    async def run(self, state_dir: Path, agent_id: str | None = None) -> ImportReport:
        """Import every agent's sessions (or only `agent_id`'s); return what happened."""
        began = time.perf_counter()
        report = ImportReport(str(state_dir), self.dry_run)
        indexes = await asyncio.to_thread(self._read_indexes, state_dir, agent_id, report)
        self._started(sum(len(index.entries) for index in indexes))
        for index in indexes:
            await self._import_agent(index, report)
        report.problems.sort(key=lambda p: (p.path, p.line or 0, p.session_key or ""))
        report.orphans.sort()
        report.seconds = time.perf_counter() - began
        return report

    def _read_indexes(
        self, state_dir: Path, agent_id: str | None, report: ImportReport
    ) -> list[_AgentIndex]:
        self._roots = [state_dir.resolve(), *self.allow_outside]
        folders = _agent_folders(state_dir, agent_id)
        indexes = []
        for agent, sessions_dir in folders.items():
            try:
                for path in (sessions_dir, sessions_dir / "sessions.json"):
                    if path.exists() and not inside(path, self._roots):
                        raise OpenClawFileError(path, None, OUTSIDE)
                entries = read_index(sessions_dir)
            except OpenClawFileError as exc:
                report.agents[agent] = AgentTally()
                report.problems.append(ImportProblem(str(exc.path), exc.line, exc.reason))
                continue
            indexes.append(_AgentIndex(agent, sessions_dir, entries))
        return indexes

    async def _import_agent(self, index: _AgentIndex, report: ImportReport) -> None:
        tally = report.agents.setdefault(index.agent_id, AgentTally())
        tally.entries = len(index.entries)
        unconfigured = self.config.agent(index.agent_id) is None
        if unconfigured:
            report.problems.append(_unconfigured(index))
            tally.skipped += len(index.entries)
        # oldest first, so the store's newest-first listing shows them in their own time
        pending = iter(sorted(index.entries.items(), key=_entry_started))

        async def worker() -> None:
            for raw_key, entry in pending:  # shared: each worker takes the next entry
                if not unconfigured:
                    await self._import_entry(index, raw_key, entry, tally, report)
                self._advance(index.agent_id)

        # Several sessions in flight: reads overlap writes, and the store commits
        # writes that arrive together in one transaction.
        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        orphans, sidecars = await asyncio.to_thread(
            find_orphans, index.sessions_dir, index.referenced
        )
        report.orphans += [str(p) for p in orphans]
        report.sidecars_ignored += sidecars

    async def _import_entry(
        self,
        index: _AgentIndex,
        raw_key: str,
        entry: Any,
        tally: AgentTally,
        report: ImportReport,
    ) -> None:
        try:
            planned = await asyncio.to_thread(self._plan, index, raw_key, entry)
        except OpenClawFileError as exc:
            report.problems.append(ImportProblem(str(exc.path), exc.line, exc.reason, raw_key))
            tally.skipped += 1
            return
        except InvalidSessionKeyError as exc:
            path = str(index.sessions_dir / "sessions.json")
            report.problems.append(ImportProblem(path, None, exc.message, raw_key))
            tally.skipped += 1
            return
        try:
            await self._write(planned, tally)
        except InvalidRequestError as exc:  # text the store cannot hold (e.g. a NUL character)
            reason = f"not stored: {exc.message}"
            report.problems.append(ImportProblem(str(planned.transcript), None, reason, raw_key))
            tally.skipped += 1

    def _plan(self, index: _AgentIndex, raw_key: str, entry: Any) -> _Planned:
        """Read one entry's transcript and build its session (in a worker thread)."""
        key = parse_session_key(raw_key, index.agent_id)
        agent_id = key.agent_id or index.agent_id
        if self.config.agent(agent_id) is None:
            path = index.sessions_dir / "sessions.json"
            raise OpenClawFileError(path, None, f"the key names agent {agent_id!r}, "
                                    "which is not in agents.list")  # fmt: skip
        if not isinstance(entry, dict):
            path = index.sessions_dir / "sessions.json"
            raise OpenClawFileError(path, None, "not a session entry: expected a JSON object")
        transcript = locate_transcript(index.sessions_dir, entry, self._roots)
        index.referenced.add(transcript.resolve())
        messages = read_transcript(transcript, _channel(entry))
        where = (index.sessions_dir / "sessions.json", None)
        record = _session_record(key.text, agent_id, key.kind.value, entry, messages, where)
        return _Planned(record, messages, transcript)

    async def _write(self, planned: _Planned, tally: AgentTally) -> None:
        key = planned.record.key
        if not self.include_deleted and await self.store.find_tombstone(key) is not None:
            tally.deleted += 1  # deleted here on purpose: an import never brings it back
            return
        existing = await self.store.find(key)
        if existing is None:
            if self.dry_run or await self.store.import_session(
                planned.record,
                _message_records(planned.record, planned.messages),
                over_tombstone=self.include_deleted,
            ):
                tally.imported += 1
                tally.messages += len(planned.messages)
                return
            existing = await self.store.find(key)
            if existing is None:  # deleted between the two calls
                tally.deleted += 1
                return
        missing = await self._missing(existing, planned.messages)
        if not missing:
            tally.unchanged += 1
            return
        if not self.dry_run:
            for message in missing:
                await self.store.append_message(existing.key, message.role, message.content,
                                                meta=message.meta,
                                                created_at=message.created_at)  # fmt: skip
        tally.updated += 1
        tally.messages += len(missing)

    async def _missing(
        self, session: SessionRecord, messages: list[TranscriptMessage]
    ) -> list[TranscriptMessage]:
        """The messages of a transcript that `session` does not hold yet."""
        if not messages:
            return []
        held = await self.store.history(session.key, limit=max(session.last_seq, 1))
        have = {_identity(m.meta) for m in held}
        return [m for m in messages if _identity(m.meta) not in have]


def _agent_folders(state_dir: Path, agent_id: str | None) -> dict[str, Path]:
    if not state_dir.is_dir():
        raise InvalidRequestError(
            f"{state_dir} is not a folder: expected an OpenClaw state dir (~/.openclaw)",
            details={"argument": "STATE_DIR", "hint": "pass the folder that holds agents/"},
        )
    folders = agent_dirs(state_dir)
    if agent_id is None:
        return folders
    if agent_id not in folders:
        known = ", ".join(folders) or "none"
        raise InvalidRequestError(
            f"no sessions of agent {agent_id!r} under {state_dir / 'agents'} (found: {known})",
            details={"argument": "--agent", "agentId": agent_id},
        )
    return {agent_id: folders[agent_id]}


def _unconfigured(index: _AgentIndex) -> ImportProblem:
    return ImportProblem(
        str(index.sessions_dir / "sessions.json"),
        None,
        f"agent {index.agent_id!r} is not in agents.list: add it to the config and run the "
        f"import again ({len(index.entries)} session(s) skipped)",
    )


def _identity(meta: dict[str, Any]) -> tuple[Any, Any] | None:
    origin = meta.get("openclaw")
    if not isinstance(origin, dict) or meta.get("recovered"):
        return None
    return origin.get("sessionId"), origin.get("entryId")


def _channel(entry: dict[str, Any]) -> str | None:
    delivery = entry.get("deliveryContext")
    origin = entry.get("origin")
    for value in (
        entry.get("channel"),
        entry.get("lastChannel"),
        delivery.get("channel") if isinstance(delivery, dict) else None,
        origin.get("provider") if isinstance(origin, dict) else None,
    ):
        if isinstance(value, str) and value:
            return value
    return None


def _parent(entry: dict[str, Any]) -> str | None:
    spawned_by = entry.get("spawnedBy")
    if not isinstance(spawned_by, str):
        return None
    try:
        return canonical_session_key(spawned_by)
    except InvalidSessionKeyError:
        return None


def _entry_started(item: tuple[str, Any]) -> float:
    """When an index entry's session started, as far as the index says (0: unknown)."""
    entry = item[1]
    if not isinstance(entry, dict):
        return 0.0
    return (
        epoch_seconds(entry.get("sessionStartedAt")) or epoch_seconds(entry.get("updatedAt")) or 0.0
    )


def _session_record(
    key: str,
    agent_id: str,
    kind: str,
    entry: dict[str, Any],
    messages: list[TranscriptMessage],
    where: Where,
) -> SessionRecord:
    times = [m.created_at for m in messages if m.created_at is not None]
    started = [t for t in (epoch_seconds(entry.get("sessionStartedAt"), where), *times[:1]) if t]
    updated = epoch_seconds(entry.get("updatedAt"), where) or (max(times) if times else None)
    created = min(started) if started else updated or now()  # never after its first message
    label = entry.get("label") if isinstance(entry.get("label"), str) else None
    first_caller = messages[0].caller if messages else None
    provenance = Provenance(Origin.IMPORTED, "openclaw", first_caller, _parent(entry))
    return SessionRecord(key, agent_id, kind, SessionStatus.ACTIVE, label or None, None, provenance,
                         created, max(updated or created, created), len(messages))  # fmt: skip


def _message_records(
    session: SessionRecord, messages: list[TranscriptMessage]
) -> list[MessageRecord]:
    records = []
    at = session.created_at
    for seq, message in enumerate(messages, 1):
        at = message.created_at or at  # a message without a time takes the one before it
        records.append(
            MessageRecord(session.key, seq, message.role, message.content, None, at, message.meta)
        )
    return records
