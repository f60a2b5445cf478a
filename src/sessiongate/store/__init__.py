"""Session storage: one protocol, several backends, chosen by `storage.url`."""

from __future__ import annotations

from sessiongate.errors import ConfigError
from sessiongate.extras import require_extra
from sessiongate.store.base import (
    MessageRecord,
    NewSession,
    Provenance,
    RunRecord,
    SessionPage,
    SessionRecord,
    SessionStore,
)
from sessiongate.store.memory import MemorySessionStore
from sessiongate.store.sqlite import SqliteSessionStore, sqlite_path

__all__ = [
    "MemorySessionStore",
    "MessageRecord",
    "NewSession",
    "Provenance",
    "RunRecord",
    "SessionPage",
    "SessionRecord",
    "SessionStore",
    "SqliteSessionStore",
    "open_store",
]


async def open_store(url: str) -> SessionStore:
    """Open the store a `storage.url` names (sqlite:///…, postgresql://…, memory://)."""
    if url == "memory://":
        return MemorySessionStore()
    if url.startswith("sqlite:///"):
        return await SqliteSessionStore.open(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        require_extra("asyncpg", "postgres", "storage.url postgresql://…")
        from sessiongate.store.postgres import PostgresSessionStore

        return await PostgresSessionStore.open(url)
    raise ConfigError(
        f"unsupported storage.url {url!r}", details={"problems": [f"storage.url: {url}"]}
    )
