"""The `SessionLifecycle` contract (delete, reset, tombstones), run over every backend.

Nothing comes back by itself: after a delete, no write for the deleted
incarnation lands anywhere, and only a creation decided after the delete makes
the key again; after a reset, nothing of the old incarnation reaches the fresh
transcript.
"""

from __future__ import annotations

import asyncio

import pytest

from sessiongate.errors import (
    SessionDeletedError,
    SessionNotFoundError,
    SessionResetError,
)
from sessiongate.store import MemorySessionStore, NewSession, Provenance, SessionStore
from sessiongate.store.base import now

KEY = "agent:atlas:direct:6596143250"


def new(key: str = KEY, decided_at: float | None = None) -> NewSession:
    return NewSession(key, "atlas", "direct", Provenance("address", "test"), None, decided_at)


async def _with_a_run(store: SessionStore, key: str = KEY) -> str:
    record, _ = await store.ensure(new(key))
    await store.accept_message(key, "hello", run_id=f"run-{key}", incarnation=record.incarnation)
    return record.incarnation


async def test_delete_erases_the_transcript_and_runs_and_leaves_a_tombstone(
    store: SessionStore,
) -> None:
    await _with_a_run(store)
    erasure = await store.delete_session(KEY, by="operator", reason="erasure request")
    assert (erasure.messages, erasure.runs, erasure.archived_messages) == (1, 1, 0)
    assert await store.find(KEY) is None
    assert await store.history(KEY) == []
    assert await store.find_run(f"run-{KEY}") is None
    tombstone = await store.find_tombstone(KEY)
    assert tombstone is not None and tombstone == erasure.tombstone
    assert (tombstone.deleted_by, tombstone.reason, tombstone.deletions) == (
        "operator",
        "erasure request",
        1,
    )
    assert await store.count_sessions() == 0


async def test_writes_to_a_deleted_key_are_refused_as_deleted(store: SessionStore) -> None:
    incarnation = await _with_a_run(store)
    await store.delete_session(KEY, by=None, reason=None)
    with pytest.raises(SessionDeletedError) as refused:
        await store.append_message(KEY, "user", "late")
    assert refused.value.details["deletedAt"] is not None
    with pytest.raises(SessionDeletedError):
        await store.accept_message(KEY, "late", run_id="r2", incarnation=incarnation)
    with pytest.raises(SessionDeletedError):
        await store.complete_run(KEY, f"run-{KEY}", "late reply", incarnation=incarnation)
    with pytest.raises(SessionDeletedError):
        await store.accept_answered(KEY, "late", "echo: late", run_id="r9", incarnation=incarnation)
    assert await store.find_run("r9") is None
    with pytest.raises(SessionDeletedError):
        await store.set_status(KEY, "archived")
    with pytest.raises(SessionDeletedError):
        await store.delete_session(KEY, by=None, reason=None)
    assert await store.find(KEY) is None
    assert await store.history(KEY) == []


async def test_deleting_a_key_that_never_existed_is_not_found(store: SessionStore) -> None:
    with pytest.raises(SessionNotFoundError) as refused:
        await store.delete_session(KEY, by=None, reason=None)
    assert not isinstance(refused.value, SessionDeletedError)
    assert await store.find_tombstone(KEY) is None


async def test_only_a_creation_decided_after_the_delete_makes_the_key_again(
    store: SessionStore,
) -> None:
    before = now()
    old = await _with_a_run(store)
    await asyncio.sleep(0.01)  # a distinct clock reading: decided before the delete
    erasure = await store.delete_session(KEY, by=None, reason=None)
    for refused in (new(), new(decided_at=before)):
        with pytest.raises(SessionDeletedError):
            await store.ensure(refused)
    assert await store.find(KEY) is None
    record, created = await store.ensure(new(decided_at=erasure.tombstone.deleted_at + 0.001))
    assert created and record.incarnation != old and record.last_seq == 0
    # the old incarnation's late writes never land in the new session
    with pytest.raises(SessionDeletedError):
        await store.complete_run(KEY, f"run-{KEY}", "late reply", incarnation=old)
    with pytest.raises(SessionDeletedError):
        await store.accept_message(KEY, "late", run_id="r3", incarnation=old)
    with pytest.raises(SessionDeletedError):
        await store.accept_answered(KEY, "late", "echo: late", run_id="r8", incarnation=old)
    assert await store.history(KEY) == []
    assert (await store.find_tombstone(KEY)) == erasure.tombstone  # kept: doctor reports it


async def test_a_second_delete_updates_the_tombstone(store: SessionStore) -> None:
    first_incarnation = await _with_a_run(store)
    first = await store.delete_session(KEY, by="a", reason="one")
    await store.ensure(new(decided_at=first.tombstone.deleted_at + 0.001))
    second = await store.delete_session(KEY, by="b", reason="two")
    assert second.tombstone.deletions == 2
    assert second.tombstone.incarnation != first_incarnation
    assert [t.key for t in await store.list_tombstones()] == [KEY]
    assert (await store.list_tombstones())[0] == second.tombstone


async def test_reset_archives_the_transcript_and_starts_a_fresh_incarnation(
    store: SessionStore,
) -> None:
    old = await _with_a_run(store)
    await store.append_message(KEY, "assistant", "hi")
    outcome = await store.reset_session(KEY, archive=True, by="operator", reason="fresh start")
    assert (outcome.archived, outcome.deleted, outcome.interrupted) == (2, 0, 1)
    fresh = await store.find(KEY)
    assert fresh == outcome.session
    assert fresh.incarnation != old and fresh.last_seq == 0 and fresh.status == "active"
    assert await store.history(KEY) == []
    run = await store.find_run(f"run-{KEY}")
    assert run is not None and run.status == "interrupted"
    # the run in flight never finishes into the fresh transcript
    with pytest.raises(SessionResetError):
        await store.complete_run(KEY, f"run-{KEY}", "late reply", incarnation=old)
    with pytest.raises(SessionResetError):
        await store.accept_message(KEY, "late", run_id="r4", incarnation=old)
    with pytest.raises(SessionResetError):
        await store.accept_answered(KEY, "late", "echo: late", run_id="r7", incarnation=old)
    assert await store.find_run("r7") is None
    message, _ = await store.accept_message(
        KEY, "new start", run_id="r5", incarnation=fresh.incarnation
    )
    assert message.seq == 1
    assert [m.content for m in await store.history(KEY)] == ["new start"]
    answered = await store.accept_answered(
        KEY, "then", "echo: then", run_id="r6", incarnation=fresh.incarnation
    )
    assert answered is not None and [m.seq for m in answered[::2]] == [2, 3]


async def test_reset_can_delete_the_old_transcript_and_delete_erases_archives(
    store: SessionStore,
) -> None:
    await _with_a_run(store)
    outcome = await store.reset_session(KEY, archive=False, by=None, reason=None)
    assert (outcome.archived, outcome.deleted) == (0, 1)
    await store.append_message(KEY, "user", "second life")
    await store.reset_session(KEY, archive=True, by=None, reason=None)
    erasure = await store.delete_session(KEY, by=None, reason=None)
    assert (erasure.messages, erasure.archived_messages) == (0, 1)


async def test_a_reset_of_a_deleted_key_is_refused_as_deleted(store: SessionStore) -> None:
    await _with_a_run(store)
    await store.delete_session(KEY, by=None, reason=None)
    with pytest.raises(SessionDeletedError):
        await store.reset_session(KEY, archive=True, by=None, reason=None)


async def test_import_skips_a_tombstoned_key_unless_told(store: SessionStore) -> None:
    await _with_a_run(store)
    await store.ensure(new("agent:atlas:cron:keep"))
    kept = await store.find("agent:atlas:cron:keep")
    assert kept is not None
    record = await store.find(KEY)
    assert record is not None
    history = await store.history(KEY)
    await store.delete_session(KEY, by=None, reason=None)
    assert not await store.import_session(record, history)
    assert await store.find(KEY) is None
    assert await store.import_session(record, history, over_tombstone=True)
    assert [m.content for m in await store.history(KEY)] == ["hello"]


async def test_writes_racing_a_delete_either_vanish_with_it_or_are_refused(
    store: SessionStore,
) -> None:
    incarnation = await _with_a_run(store)

    async def write(i: int) -> str:
        try:
            await store.accept_message(KEY, f"m{i}", run_id=f"r{i}", incarnation=incarnation)
        except SessionDeletedError:
            return "refused"
        return "stored"

    writes = [asyncio.ensure_future(write(i)) for i in range(30)]
    await asyncio.sleep(0)
    await store.delete_session(KEY, by=None, reason=None)
    outcomes = await asyncio.gather(*writes)
    assert set(outcomes) <= {"stored", "refused"}
    assert await store.find(KEY) is None
    assert await store.history(KEY) == []
    assert [await store.find_run(f"r{i}") for i in range(30)] == [None] * 30


async def test_a_tombstone_can_be_carried_to_another_store(store: SessionStore) -> None:
    other = MemorySessionStore()
    await _with_a_run(other)
    erasure = await other.delete_session(KEY, by="a", reason="moved")
    assert await store.import_tombstone(erasure.tombstone)
    assert not await store.import_tombstone(erasure.tombstone)
    assert await store.find_tombstone(KEY) == erasure.tombstone
    with pytest.raises(SessionDeletedError):
        await store.ensure(new())
