"""Row shapes shared by the SQL stores (SQLite and PostgreSQL use the same columns)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from typing import Any

from sessiongate.store.base import MessageRecord, Provenance, SessionRecord, Tombstone

__all__ = [
    "MESSAGE_COLUMNS",
    "SESSION_COLUMNS",
    "TOMBSTONE_COLUMNS",
    "dump_ancestors",
    "dump_meta",
    "load_ancestors",
    "local_owner",
    "message_from_row",
    "owner_is_dead_here",
    "session_from_row",
    "tombstone_from_row",
]

SESSION_COLUMNS = (
    "id, key, agent_id, kind, status, label, alias_of, origin, entry_point, caller_key,"
    " parent_key, created_at, updated_at, last_seq, ancestors, incarnation"
)
MESSAGE_COLUMNS = "session_key, seq, role, content, run_id, created_at, meta"
TOMBSTONE_COLUMNS = "key, agent_id, incarnation, deleted_at, deleted_by, reason, deletions"


def session_from_row(row: Sequence[Any]) -> SessionRecord:
    provenance = Provenance(row[7], row[8], row[9], row[10], load_ancestors(row[14]))
    return SessionRecord(
        row[1], row[2], row[3], row[4], row[5], row[6], provenance, row[11], row[12], row[13],
        row[15],
    )  # fmt: skip


def tombstone_from_row(row: Sequence[Any] | None) -> Tombstone | None:
    return Tombstone(*row) if row is not None else None


def dump_ancestors(ancestors: tuple[str, ...]) -> str | None:
    """The stored form of a spawn chain (a JSON array, parent first; NULL when empty)."""
    return json.dumps(list(ancestors), separators=(",", ":")) if ancestors else None


def load_ancestors(stored: str | None) -> tuple[str, ...]:
    return tuple(json.loads(stored)) if stored else ()


def message_from_row(row: Sequence[Any]) -> MessageRecord:
    meta = json.loads(row[6]) if row[6] else {}
    return MessageRecord(row[0], row[1], row[2], row[3], row[4], row[5], meta)


def dump_meta(meta: dict[str, Any]) -> str | None:
    return json.dumps(meta, separators=(",", ":")) if meta else None


def local_owner() -> str:
    """Who runs a run: this host and process (`host:pid`)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_dead_here(owner: str | None) -> bool:
    """Whether `owner` was a process on this host that no longer exists (or is unknown)."""
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
