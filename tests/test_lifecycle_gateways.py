"""Deletes and resets through one gateway process while another is mid-send: no resurrection.

Two real `sessiongate serve` processes share one store (a SQLite file; a
PostgreSQL schema). Each round a slow agent's session gets a burst of sends on
gateway A (their runs wait on a webhook) while gateway B deletes it (even
rounds) or resets it (odd rounds). createOnMiss is false, so nothing may make
the key again. At the end, after every run has settled: a deleted key does not
exist and holds nothing; a reset key's fresh transcript holds no reply of a run
accepted before the reset (every reply's run has its message in the same
transcript).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessiongate.store import NewSession, Provenance, SessionStore, open_store
from tests.helpers import GatewayProcess, upstream

ROUNDS = int(os.environ.get("SESSIONGATE_RACE_ROUNDS", "200"))
BURST = 4


async def hook(request: Request) -> JSONResponse:
    await asyncio.sleep(0.01)  # a run in flight while the delete or reset lands
    return JSONResponse({"reply": "ok"})


def config(url: str, tmp_path: Path, hook_url: str) -> dict[str, Any]:
    return {
        "gateway": {"sessions": {"createOnMiss": False}},
        "storage": {"url": url},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
        "agents": {"list": [
            {"id": "atlas", "default": True},
            {"id": "slow", "model": "webhook", "webhook": {"url": f"{hook_url}/hook"}},
        ]},
    }  # fmt: skip


async def _round(
    http: httpx.AsyncClient, a: GatewayProcess, b: GatewayProcess, key: str, deleting: bool
) -> list[dict[str, Any]]:
    async def send(i: int) -> dict[str, Any]:
        args = {"sessionKey": key, "message": f"m{i}", "timeoutSeconds": 0 if i == 0 else 5}
        body = {"tool": "sessions_send", "args": args}
        return dict((await http.post(f"{a.url}/tools/invoke", json=body)).json())

    sends = [asyncio.ensure_future(send(i)) for i in range(BURST)]
    await asyncio.sleep(random.uniform(0, 0.02))
    if deleting:
        answer = await http.request("DELETE", f"{b.url}/v1/sessions/{key}")
    else:
        answer = await http.post(f"{b.url}/v1/sessions/{key}/reset")
    assert answer.status_code == 200, answer.text
    return list(await asyncio.gather(*sends))


def _outcome(answer: dict[str, Any]) -> str:
    """How one send ended: its status, its run's error, or the refusal's code."""
    if not answer["ok"]:
        code: str = answer["error"]["code"]
        assert code in ("SESSION_DELETED", "SESSION_NOT_FOUND"), answer
        return f"refused {code}"
    result = answer["result"]
    if result["status"] == "error":
        return f"run {result['error']['code']}"
    return str(result["status"])


async def _resurrections(store: SessionStore, key: str, deleting: bool) -> list[str]:
    record = await store.find(key)
    history = await store.history(key, limit=200)
    if deleting:
        return [f"{key}: exists after its delete"] if record is not None or history else []
    accepted = {m.run_id for m in history if m.role == "user"}
    stray = [m for m in history if m.role != "user" and m.run_id not in accepted]
    return [f"{key}: a pre-reset run's reply in the fresh transcript"] if stray else []


async def _race(url: str, tmp_path: Path) -> dict[str, int]:
    store = await open_store(url)
    tally = {"rounds": 0, "resurrections": 0}
    keys: list[tuple[str, bool]] = []
    try:
        async with upstream(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as fake:
            data = config(url, tmp_path, fake.url)
            with GatewayProcess(tmp_path, "a", data) as a, GatewayProcess(tmp_path, "b", data) as b:
                async with httpx.AsyncClient(headers=a.headers, timeout=60) as http:
                    for r in range(ROUNDS):
                        key, deleting = f"agent:slow:cron:race{r}", r % 2 == 0
                        await store.ensure(NewSession(key, "slow", "cron", Provenance("cli")))
                        answers = await _round(http, a, b, key, deleting)
                        tally["rounds"] += 1
                        for x in answers:
                            outcome = _outcome(x)
                            tally[outcome] = tally.get(outcome, 0) + 1
                        keys.append((key, deleting))
                    await asyncio.sleep(1.0)  # fire-and-forget runs settle
        problems = [p for key, deleting in keys for p in await _resurrections(store, key, deleting)]
    finally:
        await store.close()
    tally["resurrections"] = len(problems)
    print(f"\nlifecycle race through gateways on {url.split(':', 1)[0]}: {tally}")
    assert problems == []
    return tally


async def test_sqlite_gateways_no_resurrection(tmp_path: Path) -> None:
    tally = await _race(f"sqlite:///{tmp_path / 'race.db'}", tmp_path)
    assert tally["rounds"] == ROUNDS and tally["resurrections"] == 0


@pytest.mark.usefixtures("postgres_url")
async def test_postgres_gateways_no_resurrection(postgres_url: str, tmp_path: Path) -> None:
    tally = await _race(postgres_url, tmp_path)
    assert tally["rounds"] == ROUNDS and tally["resurrections"] == 0
