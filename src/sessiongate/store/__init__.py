"""Session storage: one protocol, several backends, chosen by `storage.url`."""

from __future__ import annotations

from sessiongate.errors import ConfigError
from sessiongate.extras import require_extra
from sessiongate.store.base import (
    DEFAULT_TIMEOUT_SECONDS,
    Coordination,
    MessageRecord,
    NewSession,
    Provenance,
    RunLedger,
    RunRecord,
    SessionAdmin,
    SessionLookup,
    SessionPage,
    SessionRecord,
    SessionStore,
    Transcript,
)
from sessiongate.store.memory import MemorySessionStore
from sessiongate.store.sqlite import SqliteSessionStore, sqlite_path

__all__ = [
    "Coordination",
    "MemorySessionStore",
    "MessageRecord",
    "NewSession",
    "Provenance",
    "RunLedger",
    "RunRecord",
    "SessionAdmin",
    "SessionLookup",
    "SessionPage",
    "SessionRecord",
    "SessionStore",
    "SqliteSessionStore",
    "Transcript",
    "open_store",
]


async def open_store(url: str, deadline: float = DEFAULT_TIMEOUT_SECONDS) -> SessionStore:
    """Open the store a `storage.url` names (sqlite:///…, postgresql://…, memory://).

    `deadline` bounds every call, in seconds (storage.timeoutSeconds).
    """
    if url == "memory://":
        return MemorySessionStore()
    if url.startswith("sqlite:///"):
        return await SqliteSessionStore.open(sqlite_path(url), deadline)
    if url.startswith(("postgresql://", "postgres://")):
        require_extra("asyncpg", "postgres", "storage.url postgresql://…")
        from sessiongate.store.postgres import PostgresSessionStore

        return await PostgresSessionStore.open(url, deadline)
    raise ConfigError(
        f"unsupported storage.url {url!r}", details={"problems": [f"storage.url: {url}"]}
    )
