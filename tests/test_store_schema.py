"""Schema drift: each SQL backend's real tables, columns and indexes match the one description.

Fresh databases and databases created by an earlier version (then migrated on
open) are both compared against `sessiongate.store.schema`.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from sessiongate.store import SqliteSessionStore, open_store, schema
from sessiongate.store.postgres import split_schema
from tests.helpers import postgres_schema

Shape = dict[str, Any]


def _predicate(text: str | None) -> str | None:
    """A partial index's predicate, spelled the same for both dialects."""
    if text is None:
        return None
    return re.sub(r"\s+", " ", text.replace("::text", "").replace("(", "").replace(")", ""))


def expected(dialect: schema.Dialect) -> Shape:
    names = schema.TYPE_NAMES[dialect]
    tables = {
        t.name: {
            "columns": [(c.name, names[c.type], c.nullable) for c in t.columns],
            "primary_key": t.primary_key,
            "unique": {(column,) for column in t.unique},
        }
        for t in schema.TABLES
    }
    indexes = {i.name: (i.table, i.columns, _predicate(i.where)) for i in schema.INDEXES}
    return {"tables": tables, "indexes": indexes}


def sqlite_shape(path: Path) -> Shape:
    db = sqlite3.connect(path)
    tables: Shape = {}
    indexes: Shape = {}
    listed = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    names = [r[0] for r in db.execute(listed)]
    for table in names:
        info = db.execute(f"PRAGMA table_info({table})").fetchall()
        primary = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
        columns = [(r[1], r[2], not r[3] and r[1] not in primary) for r in info]
        unique: set[tuple[str, ...]] = set()
        for _, name, is_unique, origin, _partial in db.execute(f"PRAGMA index_list({table})"):
            cols = tuple(r[2] for r in db.execute(f"PRAGMA index_info({name})"))
            if origin == "u" and is_unique:
                unique.add(cols)
            elif origin == "c":
                sql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
                where = sql[0].split(" WHERE ", 1)[1] if " WHERE " in sql[0] else None
                indexes[name] = (table, cols, _predicate(where))
        tables[table] = {"columns": columns, "primary_key": primary, "unique": unique}
    db.close()
    return {"tables": tables, "indexes": indexes}


PG_INDEXES = """
SELECT t.relname, i.relname, ix.indisunique, ix.indisprimary,
       array(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n),
       pg_get_expr(ix.indpred, ix.indrelid)
FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_namespace s ON s.oid = t.relnamespace
WHERE s.nspname = $1 AND t.relname <> 'sessiongate_migrations'
"""


async def postgres_shape(url: str) -> Shape:
    dsn, name = split_schema(url)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name <> 'sessiongate_migrations'"
            " ORDER BY table_name, ordinal_position",
            name,
        )
        index_rows = await conn.fetch(PG_INDEXES, name)
    finally:
        await conn.close()
    tables: Shape = {}
    for table, column, data_type, nullable in rows:
        entry = tables.setdefault(table, {"columns": [], "primary_key": (), "unique": set()})
        entry["columns"].append((column, data_type, nullable == "YES"))
    indexes: Shape = {}
    for table, index, is_unique, is_primary, columns, where in index_rows:
        if is_primary:
            tables[table]["primary_key"] = tuple(columns)
        elif is_unique and where is None and index.endswith("_key"):
            tables[table]["unique"].add(tuple(columns))
        else:
            indexes[index] = (table, tuple(columns), _predicate(where))
    return {"tables": tables, "indexes": indexes}


async def test_a_new_sqlite_store_has_exactly_the_described_schema(tmp_path: Path) -> None:
    store = await SqliteSessionStore.open(tmp_path / "new.db")
    await store.close()
    assert sqlite_shape(tmp_path / "new.db") == expected("sqlite")


async def test_a_new_postgres_store_has_exactly_the_described_schema() -> None:
    async with postgres_schema() as url:
        store = await open_store(url)
        await store.close()
        assert await postgres_shape(url) == expected("postgresql")


async def test_an_earlier_sqlite_file_is_migrated_to_the_description(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for migration in schema.MIGRATIONS[:2]:  # what the version before this one created
        for statement in migration.statements("sqlite"):
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO runs (run_id, session_key, status, created_at) VALUES ('r', 'k', 'running', 1)"
    )
    db.close()
    store = await SqliteSessionStore.open(path)
    run = await store.find_run("r")
    await store.close()
    assert run is not None and run.status == "running"
    assert sqlite_shape(path) == expected("sqlite")
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == schema.MIGRATIONS[-1].version


async def test_an_earlier_postgres_schema_is_migrated_to_the_description() -> None:
    async with postgres_schema() as url:
        dsn, name = split_schema(url)
        conn = await asyncpg.connect(dsn, server_settings={"search_path": str(name)})
        try:
            await conn.execute(f'CREATE SCHEMA "{name}"')
            await conn.execute(
                "CREATE TABLE sessiongate_migrations (version INT PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for statement in schema.MIGRATIONS[0].statements("postgresql"):
                await conn.execute(statement)
            await conn.execute("INSERT INTO sessiongate_migrations (version) VALUES (1)")
        finally:
            await conn.close()
        store = await open_store(url)
        await store.close()
        assert await postgres_shape(url) == expected("postgresql")
