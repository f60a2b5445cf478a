"""The `RunLedger` contract (runs accepted, completed, failed, interrupted), over every backend."""

from __future__ import annotations

import asyncio

import pytest

from sessiongate.errors import ConflictError, SessionMovedError, SessionNotFoundError
from sessiongate.store import SessionStore
from tests.helpers import new_session as new


async def test_runs_are_recorded_and_interrupted(store: SessionStore) -> None:
    await store.ensure(new("agent:atlas:main"))
    await store.start_run("r1", "agent:atlas:main")
    await store.start_run("r2", "agent:atlas:main")
    await store.finish_run("r1", "completed")
    assert await store.interrupt_running() == 0  # this process is alive: its runs go on
    running = await store.find_run("r2")
    assert running is not None and running.status == "running"
    assert await store.interrupt_running(own=True) == 1
    r1, r2 = await store.find_run("r1"), await store.find_run("r2")
    assert r1 is not None and r1.status == "completed"
    assert r2 is not None and r2.status == "interrupted"
    assert await store.find_run("nope") is None


async def test_accept_and_complete_write_message_and_run_together(store: SessionStore) -> None:
    await store.ensure(new("agent:atlas:main"))
    message, run = await store.accept_message("agent:atlas:main", "hi", run_id="r1", meta={"a": 1})
    assert (message.seq, message.role, run.status) == (1, "user", "running")
    reply = await store.complete_run("agent:atlas:main", "r1", "echo: hi")
    assert (reply.seq, reply.role, reply.run_id) == (2, "assistant", "r1")
    finished = await store.find_run("r1")
    assert finished is not None and finished.status == "completed"
    with pytest.raises(SessionNotFoundError):
        await store.accept_message("agent:atlas:ghost", "hi", run_id="r2")
    assert await store.find_run("r2") is None
    assert await store.count_sessions() == 1


async def test_accepting_into_a_session_that_now_redirects_stores_nothing(
    store: SessionStore,
) -> None:
    await store.ensure(new("agent:atlas:main"))
    await store.ensure(new("agent:atlas:direct:1", kind="direct"))
    await store.set_alias("agent:atlas:direct:1", "agent:atlas:main")
    with pytest.raises(SessionMovedError) as info:
        await store.accept_message("agent:atlas:direct:1", "hi", run_id="r1")
    assert info.value.details["aliasOf"] == "agent:atlas:main"
    assert await store.history("agent:atlas:direct:1") == []
    assert await store.find_run("r1") is None
    with pytest.raises(SessionNotFoundError):
        await store.accept_message("agent:atlas:ghost", "hi", run_id="r2")


async def test_ending_an_unknown_run_changes_nothing(store: SessionStore) -> None:
    await store.finish_run("never-started", "failed", "x")
    assert await store.find_run("never-started") is None


async def test_a_run_id_is_accepted_once(store: SessionStore) -> None:
    """Idempotent sends rely on it: a second message under a run id stores nothing."""
    await store.ensure(new("agent:atlas:main"))
    await store.accept_message("agent:atlas:main", "hi", run_id="once")
    with pytest.raises(ConflictError):
        await store.accept_message("agent:atlas:main", "hi again", run_id="once")
    assert [m.content for m in await store.history("agent:atlas:main")] == ["hi"]
    await store.accept_message("agent:atlas:main", "next", run_id="other")
    assert [m.seq for m in await store.history("agent:atlas:main")] == [1, 2]


async def test_concurrent_accepts_each_get_their_answer(store: SessionStore) -> None:
    """Accepts that arrive together (PostgreSQL writes them in one statement) are stored or
    refused each on its own: a refused one stores nothing and holds nobody back."""
    keys = [f"agent:atlas:cron:job-{i}" for i in range(12)]
    for key in keys:
        await store.ensure(new(key, kind="cron"))
    await store.ensure(new("agent:atlas:direct:1", kind="direct"))
    await store.set_alias("agent:atlas:direct:1", keys[0])
    await store.accept_message(keys[1], "first", run_id="taken")
    stale = await store.find(keys[2])
    assert stale is not None
    await store.reset_session(keys[2], archive=False, by=None, reason=None)
    expected = ["SESSION_NOT_FOUND", "SESSION_MOVED", "SESSION_RESET", "CONFLICT"]
    for n in range(2):  # the first send to an idle store is written alone, the rest together
        sends = [store.accept_message(key, f"to {key}", run_id=f"{key}:{n}") for key in keys[3:]]
        refused = [
            store.accept_message("agent:atlas:ghost", "hi", run_id=f"ghost:{n}"),
            store.accept_message("agent:atlas:direct:1", "hi", run_id=f"moved:{n}"),
            store.accept_message(keys[2], "hi", run_id=f"stale:{n}",
                                 incarnation=stale.incarnation),
        ]  # fmt: skip
        if n == 1:  # a duplicate run id among them: the others still get their answers
            refused.append(store.accept_message(keys[1], "again", run_id="taken"))
        results = await asyncio.gather(*sends, *refused, return_exceptions=True)
        stored = results[: len(sends)]
        assert all(not isinstance(r, BaseException) for r in stored), stored
        codes = [getattr(r, "code", r) for r in results[len(sends) :]]
        assert codes == expected[: len(refused)]
    for key in keys[3:]:
        history = await store.history(key)
        assert [(m.seq, m.content) for m in history] == [(1, f"to {key}"), (2, f"to {key}")]
        run = await store.find_run(f"{key}:1")
        assert run is not None and run.status == "running"
    assert [m.content for m in await store.history(keys[1])] == ["first"]
    assert await store.history(keys[2]) == []
    for run_id in ("ghost:0", "moved:0", "stale:0", "ghost:1", "moved:1", "stale:1"):
        assert await store.find_run(run_id) is None
