"""Run ids: random version-4 UUIDs in `str(uuid.uuid4())`'s form, without a system call each."""

from __future__ import annotations

import os
import uuid

from sessiongate.run_ids import new_run_id


def test_a_run_id_is_a_random_uuid_in_its_text_form() -> None:
    ids = [new_run_id() for _ in range(2000)]  # past one read of random bytes
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert {text[19] for text in ids} == set("89ab")  # the variant's two random bits vary


def test_a_forked_child_never_hands_out_its_parents_ids() -> None:
    new_run_id()  # ids are waiting in this process
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, new_run_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        from_child = pipe.read()
    assert uuid.UUID(from_child).version == 4
    assert from_child != new_run_id()
