"""The `Coordination` contract (per-session locks, run events), over every backend.

Two store instances on the same state stand for two gateway processes. A store
that is `shared` (PostgreSQL) must exclude the other instance from a locked
session and carry events between them in order; an unshared one (memory, SQLite:
one serving process) must still let every lock be taken and every publish
succeed, delivering nothing across instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sessiongate.store import MemorySessionStore, SessionStore, SqliteSessionStore, open_store
from tests.helpers import POSTGRES_URL, STORE_KINDS, aeventually, new_session, postgres_schema

KEY, OTHER = "agent:atlas:main", "agent:peggy:main"


async def _done(value: bool) -> bool:
    return value


async def lane_waiters(key: str) -> int:
    """PostgreSQL sessions waiting for the lane (advisory lock) of `key`."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        waiting: int = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 1)",
            key,
        )
        return waiting
    finally:
        await conn.close()


@pytest.fixture(params=STORE_KINDS)
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SessionStore, SessionStore]]:
    """Two instances on one state: what two gateway processes would open."""
    async with contextlib.AsyncExitStack() as stack:
        stores: list[SessionStore] = []
        url = None
        if request.param == "postgres":
            url = await stack.enter_async_context(postgres_schema())
        for _ in range(2):
            if request.param == "memory":
                store: SessionStore = MemorySessionStore()
            elif request.param == "sqlite":
                store = await SqliteSessionStore.open(tmp_path / "shared.db")
            else:
                assert url is not None
                store = await open_store(url)
            stack.push_async_callback(store.close)
            stores.append(store)
        yield stores[0], stores[1]


async def test_a_lock_is_taken_again_after_release_and_never_blocks_another_session(
    pair: tuple[SessionStore, SessionStore],
) -> None:
    a, b = pair
    for _ in range(2):
        async with a.session_lock(KEY), asyncio.timeout(10), b.session_lock(OTHER):
            pass
    async with b.session_lock(KEY):
        pass


async def test_a_shared_store_lets_one_instance_at_a_time_hold_a_session(
    pair: tuple[SessionStore, SessionStore],
) -> None:
    a, b = pair
    assert a.shared == b.shared
    if not a.shared:  # one serving process per store: its lanes already serialise runs
        async with a.session_lock(KEY), b.session_lock(KEY):
            return
    order: list[str] = []

    async def second() -> None:
        async with b.session_lock(KEY):
            order.append("b holds")

    async with a.session_lock(KEY):
        waiting = asyncio.create_task(second())
        await aeventually(lambda: lane_waiters(KEY), what="b waiting for the lane a holds")
        order.append("a releases")
    await asyncio.wait_for(waiting, 10)
    assert order == ["a releases", "b holds"]


async def test_events_reach_the_other_instances_in_order_and_never_echo(
    pair: tuple[SessionStore, SessionStore],
) -> None:
    a, b = pair
    heard_by_a: list[dict[str, Any]] = []
    heard_by_b: list[dict[str, Any]] = []
    await a.listen_events(heard_by_a.append)
    await b.listen_events(heard_by_b.append)
    events = [{"event": "run.delta", "sessionKey": KEY, "n": n} for n in range(5)]
    await a.publish_events(events)
    await a.publish_events([{"event": "run.completed", "sessionKey": KEY, "reply": "x" * 9000}])
    if a.shared:
        await aeventually(lambda: _done(len(heard_by_b) == 6), what="six events heard by b")
        assert heard_by_b[:5] == events
        assert heard_by_b[5]["truncated"] is True and "reply" not in heard_by_b[5]
    else:  # no transport between instances: nothing can arrive later either
        assert heard_by_b == []
    assert heard_by_a == []  # a process's own listeners already have its events


async def test_sends_to_a_session_another_writer_holds_wait_alone(postgres_url: str) -> None:
    """PostgreSQL writes concurrent sends together, but never waits for a session's row
    there: a send to a session another transaction holds (a delete, a reset, another
    process) waits on its own, and sends to other sessions go on meanwhile."""
    store = await open_store(postgres_url)
    holder = await asyncpg.connect(POSTGRES_URL)
    try:
        for key in (KEY, OTHER):
            await store.ensure(new_session(key))
        schema = postgres_url.rsplit("schema=", 1)[1]
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(f'SELECT 1 FROM "{schema}".sessions WHERE key = $1 FOR UPDATE', KEY)
        held = asyncio.create_task(store.accept_message(KEY, "waits", run_id="held"))
        others = [store.accept_message(OTHER, f"m{i}", run_id=f"o{i}") for i in range(2)]
        others += [asyncio.create_task(store.accept_message(OTHER, "m2", run_id="o2"))]
        async with asyncio.timeout(10):
            for other in others:
                await other
        assert not held.done()
        await transaction.rollback()
        message, _ = await asyncio.wait_for(held, 10)
        assert message.seq == 1
        assert [m.seq for m in await store.history(OTHER)] == [1, 2, 3]
    finally:
        await holder.close()
        await store.close()


async def test_a_process_alone_shares_no_events_until_another_serves(postgres_url: str) -> None:
    """Run events are published for the other gateway processes: while none serves from the
    store (as a janitor sweep finds), a process publishes nothing; one that starts serving
    says so, and events reach it from then on."""
    schema = postgres_url.rsplit("schema=", 1)[1]
    channel = f"sessiongate_events_{schema}"[:63]
    spy = await asyncpg.connect(POSTGRES_URL)
    heard: list[str] = []
    await spy.add_listener(channel, lambda *args: heard.append(args[3]))

    async def published() -> list[str]:
        """What was published before now (notifications arrive in commit order)."""
        marker = json.dumps({"marker": len(heard)})  # not sessiongate's: the stores ignore it
        await spy.execute("SELECT pg_notify($1, $2)", channel, marker)
        await aeventually(lambda: _done(marker in heard), what="the marker heard")
        messages = [json.loads(h) for h in heard]
        return [m["event"]["event"] for m in messages if "event" in m]

    a = await open_store(postgres_url)
    b = await open_store(postgres_url)
    try:
        await a.listen_events(lambda event: None)
        await a.mark_serving()
        await a.heal()  # the janitor's sweep: nobody else serves
        await a.publish_events([{"event": "run.delta", "sessionKey": KEY}])
        assert await published() == ["gateway.serving"]  # a's own announcement only
        heard_by_b: list[dict[str, Any]] = []
        await b.listen_events(heard_by_b.append)
        await b.mark_serving()

        async def reached_b() -> bool:
            await a.publish_events([{"event": "run.completed", "sessionKey": KEY}])
            return bool(heard_by_b)

        await aeventually(reached_b, what="a's events reaching b once b serves")
        assert heard_by_b[0]["event"] == "run.completed"  # never b's own announcement
        await a.heal()  # b still serves: a goes on sharing
        await a.publish_events([{"event": "run.failed", "sessionKey": KEY}])
        assert (await published())[-1] == "run.failed"
    finally:
        await spy.close()
        await a.close()
        await b.close()


async def test_an_answered_send_never_runs_beside_another_process_run(postgres_url: str) -> None:
    """PostgreSQL's one-statement answered send takes the session's lane for its
    transaction: while another process holds it (a run executing), nothing is stored and
    the send goes the normal way (None); sends to other sessions are answered meanwhile."""
    a, b = await open_store(postgres_url), await open_store(postgres_url)
    try:
        for key in (KEY, OTHER):
            await a.ensure(new_session(key))
        async with b.session_lock(KEY):
            held = [a.accept_answered(KEY, f"m{i}", "echo", run_id=f"h{i}") for i in range(3)]
            free = [a.accept_answered(OTHER, f"m{i}", "echo", run_id=f"f{i}") for i in range(3)]
            results = await asyncio.gather(*held, *free)
        assert results[:3] == [None, None, None]
        assert all(r is not None and r[1].status == "completed" for r in results[3:])
        assert await a.history(KEY) == [] and await a.find_run("h0") is None
        assert [m.seq for m in await a.history(OTHER)] == list(range(1, 7))
        answered = await a.accept_answered(KEY, "now", "echo: now", run_id="after")
        assert answered is not None and (answered[0].seq, answered[2].seq) == (1, 2)
    finally:
        await a.close()
        await b.close()
