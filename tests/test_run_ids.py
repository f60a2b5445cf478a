"""Run ids: time-ordered UUIDs (version 7) in the usual text form, without a system call each."""

from __future__ import annotations

import os
import time
import uuid

from sessiongate.run_ids import new_run_id


def _millis(run_id: str) -> int:
    return int(run_id.replace("-", "")[:12], 16)


def test_a_run_id_is_a_time_ordered_uuid_in_its_text_form() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_run_id() for _ in range(2000)]  # past one read of random bytes
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before <= _millis(text) <= after  # the time it was made, in milliseconds
    assert {text[19] for text in ids} == set("89ab")  # the variant's two random bits vary
    assert len({text[24:] for text in ids}) == len(ids)  # the random tail differs


def test_a_forked_child_never_hands_out_its_parents_random_bits() -> None:
    new_run_id()  # random bits are waiting in this process
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, new_run_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        from_child = pipe.read()
    assert uuid.UUID(from_child).version == 7
    assert from_child[14:] != new_run_id()[14:]  # all but the time
