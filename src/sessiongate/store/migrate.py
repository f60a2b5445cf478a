"""Copy every session and transcript from one store to another (`sessiongate storage migrate`).

Keys, sequence numbers, times, status, aliases, provenance and the tombstones of
deleted keys (with a key created again after its delete, both) are kept; sessions
already present in the target are left alone, so a migration that stopped can
simply be run again. Run records (the status of past runs) are not copied; each
message keeps its ``runId``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from sessiongate.errors import ConflictError, InvalidRequestError
from sessiongate.store import SessionRecord, SessionStore, open_store
from sessiongate.store.sqlite import sqlite_path

log = structlog.get_logger("sessiongate.migrate")

SLASHES = (
    "sqlite:///relative/path.db is relative to the current folder ({cwd}); "
    "sqlite:////absolute/path.db (four slashes) is absolute"
)

__all__ = ["MigrationReport", "migrate"]

PAGE = 1000
MAX_TOMBSTONES = 10_000_000
MIGRATION_DEADLINE_SECONDS = 120.0  # one call may copy a long transcript


@dataclass(slots=True)
class MigrationReport:
    sessions: int = 0
    copied: int = 0
    skipped: int = 0
    messages: int = 0
    tombstones: int = 0  # deleted keys carried over, so nothing brings them back there

    def to_wire(self) -> dict[str, int]:
        return {"sessions": self.sessions, "copied": self.copied, "skipped": self.skipped,
                "messages": self.messages, "tombstones": self.tombstones}  # fmt: skip


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
    for tombstone in await source.list_tombstones(limit=MAX_TOMBSTONES):  # before the sessions:
        report.tombstones += await target.import_tombstone(tombstone)  # imports honour them
    if started:
        started(len(sessions))
    for session in sessions:
        messages = await source.history(session.key, limit=max(session.last_seq, 1))
        if await target.import_session(session, messages, over_tombstone=True):
            report.copied += 1
            report.messages += len(messages)
        else:
            report.skipped += 1
        if progress:
            progress(session)
    return report


def check_source(url: str) -> None:
    """Refuse a SQLite source that does not exist (opening it would create an empty one)."""
    if not url.startswith("sqlite:///"):
        return
    path = sqlite_path(url)
    if path.is_file():
        return
    hint = SLASHES.format(cwd=Path.cwd())
    absolute = Path("/" + url.removeprefix("sqlite:///"))
    if not path.is_absolute() and absolute.is_file():
        hint = f"did you mean sqlite:///{absolute} (four slashes)? " + hint
    raise InvalidRequestError(
        f"no SQLite store at {path.absolute()}: nothing to copy (nothing was created)",
        details={"argument": "from", "path": str(path.absolute()), "hint": hint},
    )


async def _refuse_if_served(source: SessionStore, url: str, force: bool) -> None:
    if not await source.served_elsewhere():
        return
    if force:
        log.warning("copying from a store a gateway is serving from", source=url)
        return
    raise ConflictError(
        f"a gateway is serving from {url}: messages it stores during the copy would be missed",
        details={"hint": "stop the gateway first, or pass --force to copy anyway"},
    )


async def migrate(
    source_url: str,
    target_url: str,
    started: Callable[[int], None] | None = None,
    progress: Callable[[SessionRecord], None] | None = None,
    *,
    force: bool = False,
) -> MigrationReport:
    """Open both stores and copy everything from `source_url` into `target_url`."""
    check_source(source_url)
    source = await open_store(source_url, MIGRATION_DEADLINE_SECONDS)
    try:
        await _refuse_if_served(source, source_url, force)
        target = await open_store(target_url, MIGRATION_DEADLINE_SECONDS)
        try:
            return await copy_sessions(source, target, started, progress)
        finally:
            await target.close()
    finally:
        await source.close()
