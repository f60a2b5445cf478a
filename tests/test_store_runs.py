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


async def test_accept_answered_stores_message_completed_run_and_reply(
    store: SessionStore,
) -> None:
    """A run answered at once: the message (seq n), its reply (n + 1), the run completed."""
    record, _ = await store.ensure(new("agent:atlas:main"))
    await store.accept_message("agent:atlas:main", "first", run_id="r0")
    await store.complete_run("agent:atlas:main", "r0", "echo: first")
    answered = await store.accept_answered(
        "agent:atlas:main", "hi", "echo: hi", run_id="r1", meta={"caller": None},
        incarnation=record.incarnation,
    )  # fmt: skip
    assert answered is not None
    message, run, reply = answered
    assert (message.seq, message.role, message.content, message.run_id) == (3, "user", "hi", "r1")
    assert (reply.seq, reply.role, reply.run_id) == (4, "assistant", "r1")
    assert reply.content == "echo: hi"
    assert (run.run_id, run.session_key, run.status) == ("r1", "agent:atlas:main", "completed")
    stored = await store.find_run("r1")
    assert stored is not None and stored.status == "completed" and stored.finished_at is not None
    history = await store.history("agent:atlas:main")
    assert [(m.seq, m.role, m.run_id) for m in history] == [
        (1, "user", "r0"), (2, "assistant", "r0"), (3, "user", "r1"), (4, "assistant", "r1"),
    ]  # fmt: skip
    assert history[2].meta == {"caller": None} and history[2:] == [message, reply]
    after = await store.find("agent:atlas:main")
    assert after is not None and after.last_seq == 4
    next_message, _ = await store.accept_message("agent:atlas:main", "more", run_id="r2")
    assert next_message.seq == 5


async def a_moved_session_and_a_taken_run_id(store: SessionStore) -> None:
    """`agent:atlas:main` with run `taken` (message "hi"), and `agent:atlas:direct:1`, now
    an alias of it: what an intake must refuse."""
    await store.ensure(new("agent:atlas:main"))
    await store.ensure(new("agent:atlas:direct:1", kind="direct"))
    await store.set_alias("agent:atlas:direct:1", "agent:atlas:main")
    await store.accept_message("agent:atlas:main", "hi", run_id="taken")


async def test_accept_answered_refuses_as_accept_does_and_stores_nothing(
    store: SessionStore,
) -> None:
    await a_moved_session_and_a_taken_run_id(store)
    with pytest.raises(SessionMovedError) as moved:
        await store.accept_answered("agent:atlas:direct:1", "hi", "echo: hi", run_id="r1")
    assert moved.value.details["aliasOf"] == "agent:atlas:main"
    with pytest.raises(SessionNotFoundError):
        await store.accept_answered("agent:atlas:ghost", "hi", "echo: hi", run_id="r2")
    with pytest.raises(ConflictError):  # a repeated run id (idempotent sends rely on it)
        await store.accept_answered("agent:atlas:main", "again", "echo: again", run_id="taken")
    for run_id in ("r1", "r2"):
        assert await store.find_run(run_id) is None
    assert await store.history("agent:atlas:direct:1") == []
    assert [m.content for m in await store.history("agent:atlas:main")] == ["hi"]
    main = await store.find("agent:atlas:main")
    assert main is not None and main.last_seq == 1


async def test_concurrent_answered_runs_keep_sequence_numbers_contiguous(
    store: SessionStore,
) -> None:
    """On a store that answers in one write, each reply directly follows its message."""
    await store.ensure(new("agent:atlas:main"))
    await asyncio.gather(*(
        store.accept_answered("agent:atlas:main", f"m{i}", f"echo: m{i}", run_id=f"r{i}")
        for i in range(20)
    ))  # fmt: skip
    history = await store.history("agent:atlas:main", limit=100)
    assert [m.seq for m in history] == list(range(1, 41))
    replies = {m.run_id: m.seq for m in history if m.role == "assistant"}
    for m in history:
        if m.role == "user":
            assert m.run_id is not None and m.content == f"m{m.run_id[1:]}"
            assert replies[m.run_id] > m.seq
            if store.answers_in_one_write:
                assert replies[m.run_id] == m.seq + 1


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


async def test_accept_with_history_stores_as_accept_and_reads_the_transcript(
    store: SessionStore,
) -> None:
    """The intake of a run that starts at once: the transcript after the message is stored,
    in the same call (or None where the store leaves the read to the run)."""
    record, _ = await store.ensure(new("agent:atlas:main"))
    for i in range(3):
        await store.accept_message("agent:atlas:main", f"m{i}", run_id=f"r{i}")
        await store.complete_run("agent:atlas:main", f"r{i}", f"a{i}")
    message, run, history = await store.accept_with_history(
        "agent:atlas:main", "now", run_id="r3", history=4, meta={"caller": None},
        incarnation=record.incarnation,
    )  # fmt: skip
    assert (message.seq, message.role, message.content, message.run_id) == (7, "user", "now", "r3")
    assert (run.run_id, run.session_key, run.status) == ("r3", "agent:atlas:main", "running")
    stored = await store.find_run("r3")
    assert stored is not None and stored.status == "running"
    transcript = await store.history("agent:atlas:main", limit=4)
    assert transcript[-1] == message and transcript[-1].meta == {"caller": None}
    assert history is None or history == transcript
    assert [m.content for m in transcript] == ["a1", "m2", "a2", "now"]
    _, _, none_kept = await store.accept_with_history(
        "agent:atlas:main", "x", run_id="r4", history=0
    )
    assert none_kept in (None, [])


async def test_accept_with_history_refuses_as_accept_does_and_stores_nothing(
    store: SessionStore,
) -> None:
    await a_moved_session_and_a_taken_run_id(store)
    with pytest.raises(SessionMovedError):
        await store.accept_with_history("agent:atlas:direct:1", "hi", run_id="r1", history=40)
    with pytest.raises(SessionNotFoundError):
        await store.accept_with_history("agent:atlas:ghost", "hi", run_id="r2", history=40)
    with pytest.raises(ConflictError):
        await store.accept_with_history("agent:atlas:main", "again", run_id="taken", history=40)
    for run_id in ("r1", "r2"):
        assert await store.find_run(run_id) is None
    assert [m.content for m in await store.history("agent:atlas:main")] == ["hi"]
