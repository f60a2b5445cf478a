"""Copy every session and transcript from one store to another (`sessiongate storage migrate`).

Keys, sequence numbers, times, status, aliases and provenance are kept; sessions
already present in the target are left alone, so a migration that stopped can
simply be run again. Run records (the status of past runs) are not copied; each
message keeps its ``runId``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sessiongate.store import SessionRecord, SessionStore, open_store

__all__ = ["MigrationReport", "migrate"]

PAGE = 1000


@dataclass(slots=True)
class MigrationReport:
    sessions: int = 0
    copied: int = 0
    skipped: int = 0
    messages: int = 0

    def to_wire(self) -> dict[str, int]:
        return {"sessions": self.sessions, "copied": self.copied, "skipped": self.skipped,
                "messages": self.messages}  # fmt: skip


async def _all_sessions(store: SessionStore) -> list[SessionRecord]:
    """Every session, oldest first (so the target keeps the same order)."""
    found: list[SessionRecord] = []
    cursor: str | None = None
    while True:
        page = await store.list_sessions(limit=PAGE, cursor=cursor)
        found.extend(page.sessions)
        if page.next_cursor is None:
            return found[::-1]
        cursor = page.next_cursor


async def copy_sessions(
    source: SessionStore,
    target: SessionStore,
    started: Callable[[int], None] | None = None,
    progress: Callable[[SessionRecord], None] | None = None,
) -> MigrationReport:
    sessions = await _all_sessions(source)
    report = MigrationReport(sessions=len(sessions))
    if started:
        started(len(sessions))
    for session in sessions:
        messages = await source.history(session.key, limit=max(session.last_seq, 1))
        if await target.import_session(session, messages):
            report.copied += 1
            report.messages += len(messages)
        else:
            report.skipped += 1
        if progress:
            progress(session)
    return report


async def migrate(
    source_url: str,
    target_url: str,
    started: Callable[[int], None] | None = None,
    progress: Callable[[SessionRecord], None] | None = None,
) -> MigrationReport:
    """Open both stores and copy everything from `source_url` into `target_url`."""
    source = await open_store(source_url)
    try:
        target = await open_store(target_url)
        try:
            return await copy_sessions(source, target, started, progress)
        finally:
            await target.close()
    finally:
        await source.close()
