"""Row shapes shared by the SQL stores (SQLite and PostgreSQL use the same columns).

Column lists come from the one schema description (`schema.TABLES`); rows are read
by column name (SQLite's `sqlite3.Row`, asyncpg's `Record`), never by position.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from sessiongate.store.base import MessageRecord, Provenance, RunRecord, SessionRecord, Tombstone
from sessiongate.store.schema import TABLES, Dialect
from sessiongate.store.values import readable_timestamp

__all__ = [
    "MESSAGE_COLUMNS",
    "RUN_COLUMNS",
    "SESSION_COLUMNS",
    "SESSION_FIELDS",
    "TOMBSTONE_COLUMNS",
    "columns",
    "dump_ancestors",
    "dump_meta",
    "insert_message",
    "insert_session",
    "load_ancestors",
    "local_owner",
    "message_from_row",
    "message_values",
    "owner_is_dead_here",
    "readable_sessions",
    "run_from_row",
    "session_from_row",
    "session_values",
    "tombstone_from_row",
]

Row = Mapping[str, Any]  # what both drivers' rows offer: the value of a column by name


def columns(table: str, *, without: tuple[str, ...] = ()) -> str:
    """The columns of `table`, in schema order, as a SELECT or INSERT lists them."""
    [described] = [t for t in TABLES if t.name == table]
    return ", ".join(c.name for c in described.columns if c.name not in without)


log = structlog.get_logger("sessiongate.store")

SESSION_COLUMNS = columns("sessions")
SESSION_FIELDS = columns("sessions", without=("id",))  # what a write gives (the id is the db's)
MESSAGE_COLUMNS = columns("messages")
RUN_COLUMNS = columns("runs", without=("owner",))
TOMBSTONE_COLUMNS = columns("tombstones")


def placeholders(count: int, dialect: Dialect) -> str:
    """``?, ?, …`` (SQLite) or ``$1, $2, …`` (PostgreSQL)."""
    return ", ".join("?" if dialect == "sqlite" else f"${n}" for n in range(1, count + 1))


def insert_session(dialect: Dialect) -> str:
    """Insert one session (`session_values`) unless its key exists."""
    count = len(SESSION_FIELDS.split(", "))
    return (f"INSERT INTO sessions ({SESSION_FIELDS}) VALUES ({placeholders(count, dialect)})"
            " ON CONFLICT (key) DO NOTHING")  # fmt: skip


def insert_message(dialect: Dialect) -> str:
    """Insert one message (`message_values`)."""
    count = len(MESSAGE_COLUMNS.split(", "))
    return f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ({placeholders(count, dialect)})"


def session_values(s: SessionRecord) -> tuple[Any, ...]:
    """`s` as the values of SESSION_FIELDS, in their order."""
    p = s.provenance
    by_column = {
        "key": s.key, "agent_id": s.agent_id, "kind": s.kind, "status": s.status,
        "label": s.label, "alias_of": s.alias_of, "origin": p.origin,
        "entry_point": p.entry_point, "caller_key": p.caller_key, "parent_key": p.parent_key,
        "created_at": s.created_at, "updated_at": s.updated_at, "last_seq": s.last_seq,
        "ancestors": dump_ancestors(p.ancestors), "incarnation": s.incarnation,
    }  # fmt: skip
    return tuple(by_column[name] for name in SESSION_FIELDS.split(", "))


_MESSAGE_ORDER = "session_key, seq, role, content, run_id, created_at, meta"
if MESSAGE_COLUMNS != _MESSAGE_ORDER:  # message_values writes this order: keep them one
    raise RuntimeError(f"messages columns changed ({MESSAGE_COLUMNS}): update message_values")


def message_values(m: MessageRecord) -> tuple[Any, ...]:
    """`m` as the values of MESSAGE_COLUMNS, in their order (a tuple built directly: it is
    on the path of every stored message)."""
    return (m.session_key, m.seq, m.role, m.content, m.run_id, m.created_at, dump_meta(m.meta))


def session_from_row(row: Row) -> SessionRecord:
    provenance = Provenance(row["origin"], row["entry_point"], row["caller_key"],
                            row["parent_key"], load_ancestors(row["ancestors"]))  # fmt: skip
    return SessionRecord(
        row["key"], row["agent_id"], row["kind"], row["status"], row["label"], row["alias_of"],
        provenance, row["created_at"], row["updated_at"], row["last_seq"], row["incarnation"],
    )  # fmt: skip


def tombstone_from_row(row: Row | None) -> Tombstone | None:
    if row is None:
        return None
    return Tombstone(row["key"], row["agent_id"], row["incarnation"], row["deleted_at"],
                     row["deleted_by"], row["reason"], row["deletions"])  # fmt: skip


def readable_sessions(rows: Sequence[Row]) -> list[SessionRecord]:
    """The sessions of a listing's rows; a row whose times cannot be read back (written
    before the stores refused such values) is logged and skipped, never failing the list."""
    sessions = []
    for row in rows:
        times = (row["created_at"], row["updated_at"])
        if any(readable_timestamp(t) is None for t in times):
            log.warning("store.unreadable_session_skipped", key=row["key"], reason="timestamp")
            continue
        sessions.append(session_from_row(row))
    return sessions


def dump_ancestors(ancestors: tuple[str, ...]) -> str | None:
    """The stored form of a spawn chain (a JSON array, parent first; NULL when empty)."""
    return json.dumps(list(ancestors), separators=(",", ":")) if ancestors else None


def load_ancestors(stored: str | None) -> tuple[str, ...]:
    return tuple(json.loads(stored)) if stored else ()


def message_from_row(row: Row) -> MessageRecord:
    meta = json.loads(row["meta"]) if row["meta"] else {}
    return MessageRecord(row["session_key"], row["seq"], row["role"], row["content"],
                         row["run_id"], row["created_at"], meta)  # fmt: skip


def run_from_row(row: Row) -> RunRecord:
    return RunRecord(row["run_id"], row["session_key"], row["status"], row["created_at"],
                     row["finished_at"], row["error"])  # fmt: skip


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder, not one per message


def dump_meta(meta: dict[str, Any]) -> str | None:
    return _COMPACT.encode(meta) if meta else None


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
