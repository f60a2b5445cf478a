"""The one schema of the SQL stores: a description of the tables, and the migrations.

`TABLES` and `INDEXES` say what every SQL backend holds once migrated; a test
compares each backend's real tables, columns and indexes against them.
`MIGRATIONS` is the one ordered list that gets a database there, with SQL per
dialect where SQLite and PostgreSQL differ; `pending` picks what a database
still needs. Each backend applies those in its own way of making it atomic
(PostgreSQL: one transaction under an advisory lock; SQLite: one ``BEGIN
IMMEDIATE`` transaction) and records the version (``sessiongate_migrations`` /
``PRAGMA user_version``).

To change the schema: append a `Migration` (never edit an applied one) and
update the description beside it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

__all__ = ["INDEXES", "MIGRATIONS", "TABLES", "Column", "Index", "Migration", "Table", "pending"]

Dialect = Literal["sqlite", "postgresql"]
ColumnType = Literal["id", "text", "integer", "real"]

# how each logical column type is spelled, as the databases report it back
TYPE_NAMES: dict[Dialect, dict[ColumnType, str]] = {
    "sqlite": {"id": "INTEGER", "text": "TEXT", "integer": "INTEGER", "real": "REAL"},
    "postgresql": {"id": "bigint", "text": "text", "integer": "bigint",
                   "real": "double precision"},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    unique: tuple[str, ...] = ()  # columns each unique on their own


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]
    where: str | None = None  # a partial index's predicate


TABLES = (
    Table(
        "sessions",
        (
            Column("id", "id"),
            Column("key", "text"),
            Column("agent_id", "text"),
            Column("kind", "text"),
            Column("status", "text"),
            Column("label", "text", nullable=True),
            Column("alias_of", "text", nullable=True),
            Column("origin", "text"),
            Column("entry_point", "text", nullable=True),
            Column("caller_key", "text", nullable=True),
            Column("parent_key", "text", nullable=True),
            Column("created_at", "real"),
            Column("updated_at", "real"),
            Column("last_seq", "integer"),
            Column("ancestors", "text", nullable=True),  # JSON array, parent first
            Column("incarnation", "text"),  # new on creation and on reset ('' before v6)
        ),
        primary_key=("id",),
        unique=("key",),
    ),
    Table(
        "messages",
        (
            Column("session_key", "text"),
            Column("seq", "integer"),
            Column("role", "text"),
            Column("content", "text"),
            Column("run_id", "text", nullable=True),
            Column("created_at", "real"),
            Column("meta", "text", nullable=True),
        ),
        primary_key=("session_key", "seq"),
    ),
    Table(
        "runs",
        (
            Column("run_id", "text"),
            Column("session_key", "text"),
            Column("status", "text"),
            Column("created_at", "real"),
            Column("finished_at", "real", nullable=True),
            Column("error", "text", nullable=True),
            Column("owner", "text", nullable=True),
        ),
        primary_key=("run_id",),
    ),
    Table(
        "tombstones",
        (
            Column("key", "text"),
            Column("agent_id", "text"),
            Column("incarnation", "text"),
            Column("deleted_at", "real"),
            Column("deleted_by", "text", nullable=True),
            Column("reason", "text", nullable=True),
            Column("deletions", "integer"),
        ),
        primary_key=("key",),
    ),
    Table(
        "archived_messages",
        (
            Column("session_key", "text"),
            Column("incarnation", "text"),
            Column("seq", "integer"),
            Column("role", "text"),
            Column("content", "text"),
            Column("run_id", "text", nullable=True),
            Column("created_at", "real"),
            Column("meta", "text", nullable=True),
            Column("archived_at", "real"),
        ),
        primary_key=("session_key", "incarnation", "seq"),
    ),
    Table(
        "page_sessions",
        (Column("id", "text"), Column("expires_at", "real")),
        primary_key=("id",),
    ),
)

INDEXES = (
    Index("sessions_by_agent", "sessions", ("agent_id", "id")),
    Index("sessions_by_agent_kind", "sessions", ("agent_id", "kind", "id")),
    Index("sessions_by_kind", "sessions", ("kind", "id")),
    Index("sessions_by_label", "sessions", ("label", "id"), where="label IS NOT NULL"),
    Index("runs_running", "runs", ("owner",), where="status = 'running'"),
    Index("sessions_by_alias", "sessions", ("alias_of",), where="alias_of IS NOT NULL"),
    Index("tombstones_by_time", "tombstones", ("deleted_at",)),
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One step; `postgresql` is None where it is the same SQL as `sqlite`."""

    version: int
    purpose: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...] | None = None

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        if dialect == "postgresql" and self.postgresql is not None:
            return self.postgresql
        return self.sqlite


_TABLES_V1 = """
CREATE TABLE sessions (
    id {id},
    key TEXT NOT NULL UNIQUE,
    agent_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    label TEXT,
    alias_of TEXT,
    origin TEXT NOT NULL,
    entry_point TEXT,
    caller_key TEXT,
    parent_key TEXT,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    last_seq {int} NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_agent ON sessions (agent_id, id);
CREATE INDEX sessions_by_agent_kind ON sessions (agent_id, kind, id);
CREATE INDEX sessions_by_kind ON sessions (kind, id);
CREATE INDEX sessions_by_label ON sessions (label, id) WHERE label IS NOT NULL;
CREATE TABLE messages (
    session_key TEXT NOT NULL,
    seq {int} NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    run_id TEXT,
    created_at {real} NOT NULL,
    meta TEXT,
    PRIMARY KEY (session_key, seq)
){without_rowid};
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    session_key TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at {real} NOT NULL,
    finished_at {real},
    error TEXT{owner}
);
CREATE INDEX runs_running ON runs ({running_column}) WHERE status = 'running'
"""


def _split(script: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in script.split(";") if s.strip())


# PostgreSQL's first version already had runs.owner and indexed it (SQLite's did not)
_V1_SQLITE = _split(_TABLES_V1.format(
    id="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL", int="INTEGER",
    without_rowid=" WITHOUT ROWID", owner="", running_column="status"))  # fmt: skip
_V1_POSTGRESQL = _split(_TABLES_V1.format(
    id="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION", int="BIGINT",
    without_rowid="", owner=",\n    owner TEXT", running_column="owner"))  # fmt: skip

_LIFECYCLE = """
CREATE TABLE tombstones (
    key TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    incarnation TEXT NOT NULL,
    deleted_at {real} NOT NULL,
    deleted_by TEXT,
    reason TEXT,
    deletions {int} NOT NULL DEFAULT 1
){without_rowid};
CREATE INDEX tombstones_by_time ON tombstones (deleted_at);
CREATE TABLE archived_messages (
    session_key TEXT NOT NULL,
    incarnation TEXT NOT NULL,
    seq {int} NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    run_id TEXT,
    created_at {real} NOT NULL,
    meta TEXT,
    archived_at {real} NOT NULL,
    PRIMARY KEY (session_key, incarnation, seq)
){without_rowid}
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sessions, transcripts and runs", _V1_SQLITE, _V1_POSTGRESQL),
    Migration(
        2,
        "runs remember the process that runs them",
        sqlite=("ALTER TABLE runs ADD COLUMN owner TEXT",),
        postgresql=("ALTER TABLE runs ADD COLUMN IF NOT EXISTS owner TEXT",),
    ),
    Migration(
        3,
        "one runs_running index on both backends: running runs by owner",
        sqlite=(
            "DROP INDEX IF EXISTS runs_running",
            "CREATE INDEX runs_running ON runs (owner) WHERE status = 'running'",
        ),
    ),
    Migration(
        4,
        "the sessions an alias redirects to a key (the control page's session view)",
        sqlite=(
            "CREATE INDEX sessions_by_alias ON sessions (alias_of) WHERE alias_of IS NOT NULL",
        ),
    ),
    Migration(
        5,
        "sessions store their spawn chain, so tree visibility is one lookup at any depth;"
        " sessions spawned before get theirs by walking each chain up once",
        sqlite=(
            "ALTER TABLE sessions ADD COLUMN ancestors TEXT",
            """WITH RECURSIVE up(key, cur, path, depth) AS (
                SELECT key, parent_key, json_array(parent_key), 1
                FROM sessions WHERE parent_key IS NOT NULL
                UNION ALL
                SELECT up.key, p.parent_key, json_insert(up.path, '$[#]', p.parent_key),
                       up.depth + 1
                FROM up JOIN sessions p ON p.key = up.cur
                WHERE p.parent_key IS NOT NULL AND up.depth < 32
            )
            UPDATE sessions SET ancestors = (
                SELECT path FROM up WHERE up.key = sessions.key ORDER BY depth DESC LIMIT 1
            ) WHERE parent_key IS NOT NULL""",
        ),
        postgresql=(
            "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS ancestors TEXT",
            """WITH RECURSIVE up(key, cur, path, depth) AS (
                SELECT key, parent_key, jsonb_build_array(parent_key), 1
                FROM sessions WHERE parent_key IS NOT NULL
                UNION ALL
                SELECT up.key, p.parent_key, up.path || to_jsonb(p.parent_key), up.depth + 1
                FROM up JOIN sessions p ON p.key = up.cur
                WHERE p.parent_key IS NOT NULL AND up.depth < 32
            ), complete AS (
                SELECT DISTINCT ON (key) key, path FROM up ORDER BY key, depth DESC
            )
            UPDATE sessions SET ancestors = complete.path::text
            FROM complete WHERE complete.key = sessions.key""",
        ),
    ),
    Migration(
        6,
        "deletion leaves a tombstone; a reset keeps the old transcript in an archive;"
        " each session has an incarnation, so writes for a deleted or reset one are refused",
        sqlite=(
            "ALTER TABLE sessions ADD COLUMN incarnation TEXT NOT NULL DEFAULT ''",
            *_split(_LIFECYCLE.format(real="REAL", int="INTEGER", without_rowid=" WITHOUT ROWID")),
        ),
        postgresql=(
            "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS incarnation TEXT NOT NULL DEFAULT ''",
            *_split(_LIFECYCLE.format(real="DOUBLE PRECISION", int="BIGINT", without_rowid="")),
        ),
    ),
    Migration(
        7,
        "the control page's sign-ins, so that a sign-out holds in every process",
        sqlite=("CREATE TABLE page_sessions (id TEXT PRIMARY KEY, expires_at REAL NOT NULL)",),
        postgresql=(
            "CREATE TABLE IF NOT EXISTS page_sessions"
            " (id TEXT PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL)",
        ),
    ),
)


def pending(applied: Collection[int], dialect: Dialect) -> list[tuple[int, tuple[str, ...]]]:
    """The migrations a database that has `applied` still needs, in order, as statements."""
    return [(m.version, m.statements(dialect)) for m in MIGRATIONS if m.version not in applied]
