"""Each session stores its spawn chain, so `tree` visibility is one lookup at any depth;
stores written before the chain existed get it on upgrade."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from sessiongate.config import SessionGateConfig
from sessiongate.store import MemorySessionStore, SessionStore, SqliteSessionStore, open_store
from sessiongate.store.base import NewSession, Provenance
from sessiongate.store.schema import pending
from tests.helpers import POSTGRES_URL, client_for, invoke, postgres_schema

BEFORE_CHAINS = 4  # the last schema version without sessions.ancestors

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

CHAIN = ["agent:atlas:main"] + [f"agent:atlas:subagent:c{i}" for i in range(1, 5)]


async def test_the_chain_is_stored_and_read_back(store: SessionStore) -> None:
    chain: tuple[str, ...] = ()
    for parent, key in itertools.pairwise(CHAIN):
        chain = (parent, *chain)
        provenance = Provenance("spawn", "api", None, parent, chain)
        await store.ensure(NewSession(key, "atlas", "subagent", provenance))
    found = await store.find(CHAIN[-1])
    assert found is not None
    assert found.provenance.ancestors == tuple(reversed(CHAIN[:-1]))
    copy = MemorySessionStore()
    assert await copy.import_session(found, [])
    copied = await copy.find(CHAIN[-1])
    assert copied is not None and copied.provenance.ancestors == found.provenance.ancestors


def _rows() -> list[tuple[str, str | None]]:
    return [(key, CHAIN[i - 1] if i else None) for i, key in enumerate(CHAIN)]


async def assert_chains_backfilled(store: SessionStore) -> None:
    """The store, opened on data written before chains were stored, knows every chain."""
    try:
        deep = await store.find(CHAIN[-1])
        root = await store.find(CHAIN[0])
    finally:
        await store.close()
    assert deep is not None and deep.provenance.ancestors == tuple(reversed(CHAIN[:-1]))
    assert root is not None and root.provenance.ancestors == ()


async def test_a_sqlite_file_from_before_gets_its_chains(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for version, statements in pending((), "sqlite"):
        if version <= BEFORE_CHAINS:
            for statement in statements:
                db.execute(statement)
    db.executemany(
        "INSERT INTO sessions (key, agent_id, kind, origin, parent_key, created_at, updated_at)"
        " VALUES (?, 'atlas', 'subagent', 'spawn', ?, 0, 0)",
        _rows(),
    )
    db.execute(f"PRAGMA user_version = {BEFORE_CHAINS}")
    db.commit()
    db.close()
    await assert_chains_backfilled(await SqliteSessionStore.open(path))


async def test_a_postgres_schema_from_before_gets_its_chains() -> None:
    async with postgres_schema() as url:
        schema = parse_qs(urlsplit(url).query)["schema"][0]
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.execute(f'SET search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE sessiongate_migrations (version INT PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for version, statements in pending((), "postgresql"):
                if version <= BEFORE_CHAINS:
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO sessiongate_migrations (version) VALUES ($1)", version
                    )
            await conn.executemany(
                "INSERT INTO sessions (key, agent_id, kind, origin, parent_key, created_at,"
                " updated_at) VALUES ($1, 'atlas', 'subagent', 'spawn', $2, 0, 0)",
                _rows(),
            )
        finally:
            await conn.close()
        await assert_chains_backfilled(await open_store(url))


async def test_tree_visibility_reaches_any_depth_and_no_further(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    tools = {"sessions": {"visibility": "tree"}, "agentToAgent": {"enabled": False}}
    async with serve(config_factory(tools=tools)) as gw, client_for(gw) as http:
        await invoke(
            http, "sessions_send", {"sessionKey": "agent:atlas:cron:other", "message": "m"}
        )
        parent = "agent:atlas:main"
        for _ in range(6):
            args = {"agentId": "atlas", "task": "t", "parentSessionKey": parent}
            parent = (await invoke(http, "sessions_spawn", args)).json()["result"][
                "childSessionKey"
            ]
        owner = await http.get(f"/v1/sessions/{parent}", headers={"x-session-key": "main"})
        assert owner.status_code == 200
        stranger = await http.get(
            f"/v1/sessions/{parent}", headers={"x-session-key": "agent:atlas:cron:other"}
        )
        assert stranger.status_code == 404
        assert stranger.json()["error"]["code"] == "SESSION_NOT_FOUND"
