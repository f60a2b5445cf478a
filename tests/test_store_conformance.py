"""The `SessionLookup`, `Transcript` and `SessionAdmin` contracts, run over every backend.

The run ledger and coordination have their own modules: test_store_runs.py and
test_store_coordination.py.
"""

from __future__ import annotations

import asyncio

import pytest

from sessiongate.errors import InvalidRequestError, SessionNotFoundError
from sessiongate.store import MemorySessionStore, NewSession, Provenance, SessionStore
from tests.helpers import new_session as new


async def test_find_missing_is_none_and_ensure_creates_once(store: SessionStore) -> None:
    assert await store.find("agent:atlas:main") is None
    record, created = await store.ensure(new("agent:atlas:main"))
    again, created_again = await store.ensure(new("agent:atlas:main"))
    assert (created, created_again) == (True, False)
    assert again.key == record.key == "agent:atlas:main"
    assert (await store.find("agent:atlas:main")) == again
    assert await store.count_sessions() == 1


async def test_fifty_concurrent_ensures_create_exactly_one(store: SessionStore) -> None:
    key = "agent:atlas:telegram:atlas:direct:6596143250"
    results = await asyncio.gather(*(store.ensure(new(key, kind="direct")) for _ in range(50)))
    assert sum(created for _, created in results) == 1
    assert {record.key for record, _ in results} == {key}
    assert await store.count_sessions() == 1


async def test_provenance_is_kept(store: SessionStore) -> None:
    provenance = Provenance("spawn", "http", "agent:atlas:main", "agent:atlas:main")
    await store.ensure(NewSession("agent:atlas:cron:x", "atlas", "cron", provenance, "nightly"))
    record = await store.find("agent:atlas:cron:x")
    assert record is not None
    assert record.provenance == provenance
    assert record.label == "nightly"
    assert record.status == "active"


async def test_list_pages_newest_first_with_a_keyset_cursor(store: SessionStore) -> None:
    for i in range(7):
        await store.ensure(new(f"agent:atlas:cron:job{i}", kind="cron"))
    await store.ensure(new("agent:peggy:main", agent="peggy"))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await store.list_sessions(agent_id="atlas", limit=3, cursor=cursor)
        seen.extend(s.key for s in page.sessions)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"agent:atlas:cron:job{i}" for i in reversed(range(7))]
    mains = await store.list_sessions(kind="main")
    assert [s.key for s in mains.sessions] == ["agent:peggy:main"]


async def test_a_foreign_cursor_is_an_invalid_request(store: SessionStore) -> None:
    with pytest.raises(InvalidRequestError):
        await store.list_sessions(cursor="not-a-cursor")


async def test_sequence_numbers_have_no_gaps_under_concurrency(store: SessionStore) -> None:
    await store.ensure(new("agent:atlas:main"))
    await asyncio.gather(
        *(store.append_message("agent:atlas:main", "user", f"m{i}") for i in range(40))
    )
    history = await store.history("agent:atlas:main", limit=100)
    assert [m.seq for m in history] == list(range(1, 41))
    record = await store.find("agent:atlas:main")
    assert record is not None and record.last_seq == 40


async def test_history_pages_backwards_oldest_first(store: SessionStore) -> None:
    await store.ensure(new("agent:atlas:main"))
    for i in range(10):
        await store.append_message("agent:atlas:main", "user", f"m{i}", meta={"i": i})
    last = await store.history("agent:atlas:main", limit=3)
    assert [m.content for m in last] == ["m7", "m8", "m9"]
    earlier = await store.history("agent:atlas:main", limit=3, before=last[0].seq)
    assert [m.seq for m in earlier] == [5, 6, 7]
    assert earlier[0].meta == {"i": 4}


async def test_appending_to_a_missing_session_creates_nothing(store: SessionStore) -> None:
    with pytest.raises(SessionNotFoundError):
        await store.append_message("agent:atlas:ghost", "user", "hello")
    assert await store.count_sessions() == 0


async def test_alias_status_and_labels(store: SessionStore) -> None:
    await store.ensure(new("agent:atlas:main"))
    await store.ensure(new("agent:atlas:direct:1", kind="direct", label="ops"))
    await store.set_alias("agent:atlas:direct:1", "agent:atlas:main")
    aliased = await store.find("agent:atlas:direct:1")
    assert aliased is not None and aliased.alias_of == "agent:atlas:main"
    found = await store.find_by_label("ops", "atlas")
    assert found is not None and found.key == "agent:atlas:direct:1"
    await store.set_status("agent:atlas:direct:1", "archived")
    assert await store.find_by_label("ops", None) is None


async def test_aliases_pointing_at_a_session_and_counts_by_origin(store: SessionStore) -> None:
    await store.ensure(NewSession("agent:atlas:main", "atlas", "main", Provenance("startup")))
    for peer in ("2", "1"):
        await store.ensure(new(f"agent:atlas:direct:{peer}", kind="direct"))
        await store.set_alias(f"agent:atlas:direct:{peer}", "agent:atlas:main")
    assert await store.aliases_of("agent:atlas:main") == [
        "agent:atlas:direct:1",
        "agent:atlas:direct:2",
    ]
    assert await store.aliases_of("agent:atlas:direct:1") == []
    assert await store.count_by_origin() == {"startup": 1, "address": 2}


async def test_import_keeps_a_session_exactly_and_skips_existing_keys(store: SessionStore) -> None:
    source = MemorySessionStore()
    original, _ = await source.ensure(new("agent:atlas:direct:9", kind="direct", label="vip"))
    for i in range(3):
        await source.append_message(original.key, "user", f"m{i}", run_id=f"r{i}", meta={"i": i})
    await source.set_alias(original.key, "agent:atlas:main")
    record = await source.find(original.key)
    assert record is not None
    messages = await source.history(record.key, limit=10)
    assert await store.import_session(record, messages) is True
    assert await store.import_session(record, messages) is False
    copied = await store.find(record.key)
    assert copied is not None
    assert (copied.label, copied.alias_of, copied.last_seq, copied.provenance) == (
        "vip", "agent:atlas:main", 3, record.provenance,
    )  # fmt: skip
    assert copied.created_at == record.created_at
    assert await store.history(record.key, limit=10) == messages
    appended = await store.append_message(record.key, "user", "after")
    assert appended.seq == 4


async def test_a_failing_write_does_not_undo_concurrent_ones(store: SessionStore) -> None:
    await store.ensure(new("agent:atlas:main"))
    writes = [store.append_message("agent:atlas:main", "user", f"m{i}") for i in range(10)]
    writes.insert(5, store.append_message("agent:atlas:ghost", "user", "lost"))
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(r) for r in results].count(SessionNotFoundError) == 1
    history = await store.history("agent:atlas:main", limit=20)
    assert [m.seq for m in history] == list(range(1, 11))
    assert await store.count_sessions() == 1
