"""The writing side of the delete/reset race (test_lifecycle_race.py), as its own process.

Reads one line per round from stdin: ``<key> <incarnation> <decided_at>``. For
each it starts a burst of writes for that incarnation (accepts, a run's reply,
an ensure decided before the delete), prints ``go`` once they are in flight,
then prints one JSON line with what the store acknowledged. The other process
deletes or resets the key as soon as it reads ``go``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from sessiongate.errors import SessionGateError
from sessiongate.store import NewSession, Provenance, SessionStore, open_store

BURST = 6


async def _attempt(write: Any, delay: float) -> str | None:
    await asyncio.sleep(delay)  # spread out: some land before the delete, some after
    try:
        await write
    except SessionGateError as exc:
        return exc.code
    return None


async def _round(store: SessionStore, key: str, incarnation: str, decided_at: float) -> None:
    accepts = [
        store.accept_message(key, f"w{i}", run_id=f"{key}:w{i}", incarnation=incarnation)
        for i in range(BURST)
    ]
    reply = store.complete_run(key, f"{key}:run", "late reply", incarnation=incarnation)
    new = NewSession(key, "atlas", "direct", Provenance("address", "race"), None, decided_at)
    writes = (*accepts, reply, store.ensure(new))
    tasks = [asyncio.ensure_future(_attempt(w, i * 0.0005)) for i, w in enumerate(writes)]
    await asyncio.sleep(0)  # every write has been sent on its way
    print("go", flush=True)
    outcomes = await asyncio.gather(*tasks)
    acknowledged = [f"w{i}" for i, code in enumerate(outcomes[:BURST]) if code is None]
    print(json.dumps({"acknowledged": acknowledged, "refusals": outcomes}), flush=True)


async def main(url: str) -> None:
    store = await open_store(url, 30.0)
    try:
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            key, incarnation, decided_at = line.split()
            await _round(store, key, incarnation, float(decided_at))
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
