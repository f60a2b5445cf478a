"""Nothing comes back by itself: deletes and resets racing writes from a second process.

Each round gives a session a run in flight, then a second OS process starts a
burst of writes for that incarnation (accepted sends, the run's late reply, an
address decided before the delete) and, while they are in flight, this process
deletes the session (even rounds) or resets it (odd rounds). A resurrection is
any of: the deleted key exists again; an acknowledged write survives its
delete; anything of the old incarnation lands in the fresh transcript; an
acknowledged write is missing from the reset's archive. There must be none, on
SQLite (two processes on one file) and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sessiongate.store import NewSession, Provenance, SessionStore, open_store
from sessiongate.store.base import now
from sessiongate.store.postgres import split_schema

ROUNDS = int(os.environ.get("SESSIONGATE_RACE_ROUNDS", "200"))
ROOT = Path(__file__).resolve().parent.parent


async def _archived(url: str, key: str) -> list[str]:
    sql = "SELECT content FROM archived_messages WHERE session_key = {} ORDER BY seq"
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")

        def read() -> list[str]:
            db = sqlite3.connect(path)
            try:
                return [r[0] for r in db.execute(sql.format("?"), (key,))]
            finally:
                db.close()

        return await asyncio.to_thread(read)
    dsn, schema = split_schema(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        return [r[0] for r in await conn.fetch(sql.format("$1"), key)]
    finally:
        await conn.close()


async def _prepare(store: SessionStore, key: str) -> str:
    record, _ = await store.ensure(NewSession(key, "atlas", "direct", Provenance("inbound")))
    await store.accept_message(key, "hello", run_id=f"{key}:run", incarnation=record.incarnation)
    return record.incarnation


async def _resurrections(
    store: SessionStore, url: str, key: str, deleting: bool, acknowledged: list[str]
) -> list[str]:
    found: list[str] = []
    record = await store.find(key)
    history = [m.content for m in await store.history(key, limit=100)]
    if deleting:
        if record is not None or history:
            found.append(f"{key} exists after its delete: {record} {history}")
        if await _archived(url, key):
            found.append(f"{key}: archived messages survived the delete")
        return found
    if history:
        found.append(f"{key}: the fresh transcript holds {history}")
    archived = await _archived(url, key)
    missing = [w for w in ["hello", *acknowledged] if w not in archived]
    if missing:
        found.append(f"{key}: acknowledged {missing} are not in the archive {archived}")
    return found


async def _race(url: str, tmp_path: Path) -> dict[str, int]:
    store = await open_store(url)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.lifecycle_race", url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert worker.stdin is not None and worker.stdout is not None
    tally = {"rounds": 0, "resurrections": 0, "acknowledged": 0, "refused": 0, "interleaved": 0}
    problems: list[str] = []
    try:
        for r in range(ROUNDS):
            key, deleting = f"agent:atlas:direct:race{r}", r % 2 == 0
            incarnation = await _prepare(store, key)
            worker.stdin.write(f"{key} {incarnation} {now()!r}\n".encode())
            await worker.stdin.drain()
            assert (await worker.stdout.readline()).strip() == b"go"
            if deleting:
                await store.delete_session(key, by="race", reason="round")
            else:
                await store.reset_session(key, archive=True, by="race", reason="round")
            result: dict[str, Any] = json.loads(await worker.stdout.readline())
            acknowledged = result["acknowledged"]
            refused = sum(code is not None for code in result["refusals"][:-1])
            tally["rounds"] += 1
            tally["acknowledged"] += len(acknowledged)
            tally["refused"] += refused
            tally["interleaved"] += bool(acknowledged) and bool(refused)
            found = await _resurrections(store, url, key, deleting, acknowledged)
            tally["resurrections"] += bool(found)
            problems += found
    finally:
        worker.stdin.close()
        await worker.wait()
        await store.close()
    print(f"\nlifecycle race on {url.split(':', 1)[0]}: {tally}")
    assert problems == []
    return tally


async def test_sqlite_two_processes_no_resurrection(tmp_path: Path) -> None:
    tally = await _race(f"sqlite:///{tmp_path / 'race.db'}", tmp_path)
    assert tally == {**tally, "rounds": ROUNDS, "resurrections": 0}


@pytest.mark.usefixtures("postgres_url")
async def test_postgres_two_processes_no_resurrection(postgres_url: str, tmp_path: Path) -> None:
    tally = await _race(postgres_url, tmp_path)
    assert tally == {**tally, "rounds": ROUNDS, "resurrections": 0}
