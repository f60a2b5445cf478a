"""Runs answered at once (an echo agent), over the real HTTP and WebSocket surfaces.

An echo agent answers without I/O: when its session has no run queued or executing in
this process, the send stores the message, the completed run and the reply in one store
write. Seen from outside, nothing differs from a run that executed: a fire-and-forget
send still answers ``accepted``, a waiting one ``ok`` with the reply, the transcript
holds the message and its reply with consecutive sequence numbers, subscribers get
``run.started``, ``run.delta`` and ``run.completed`` in that order, and the run's
latency is counted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from sessiongate.config import SessionGateConfig
from tests.helpers import client_for, connected
from tests.helpers import ws_request as request

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]
MAIN = "agent:atlas:main"


async def send(http: httpx.AsyncClient, message: str, wait: float, **extra: Any) -> dict[str, Any]:
    args = {"sessionKey": MAIN, "message": message, "timeoutSeconds": wait, **extra}
    response = await http.post("/tools/invoke", json={"tool": "sessions_send", "args": args})
    assert response.status_code == 200, response.text
    return dict(response.json()["result"])


async def transcript(http: httpx.AsyncClient) -> list[tuple[int, str, str, str]]:
    response = await http.get(f"/v1/sessions/{MAIN}/messages", params={"limit": 100})
    messages = response.json()["result"]["messages"]
    return [(m["seq"], m["role"], m["content"], m["runId"]) for m in messages]


async def test_sends_store_message_and_reply_in_order_and_subscribers_see_the_run(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        ws = await connected(gw)
        subscribed = await request(ws, 1, "sessions.subscribe", sessionKey=MAIN)
        assert subscribed["ok"], subscribed
        waited = await send(http, "first", 10)
        assert (waited["status"], waited["reply"]) == ("ok", "echo: first")
        accepted = await send(http, "second", 0)
        assert accepted["status"] == "accepted" and "reply" not in accepted
        # answered at once: the run is stored completed before the send is acknowledged
        run = await gw.gateway.store.find_run(accepted["runId"])
        assert run is not None and run.status == "completed"
        first, second = waited["runId"], accepted["runId"]
        assert await transcript(http) == [
            (1, "user", "first", first),
            (2, "assistant", "echo: first", first),
            (3, "user", "second", second),
            (4, "assistant", "echo: second", second),
        ]
        frames = [json.loads(await ws.recv()) for _ in range(6)]
        seen = [(f["event"], f["payload"]["runId"]) for f in frames]
        assert seen == [(e, r) for r in (first, second)
                        for e in ("run.started", "run.delta", "run.completed")]  # fmt: skip
        assert frames[4]["payload"]["delta"] == frames[5]["payload"]["reply"] == "echo: second"
        assert frames[3]["payload"]["agentId"] == "atlas"
        assert [f["seq"] for f in frames] == sorted(f["seq"] for f in frames)
        metrics = (await http.get("/metrics")).text
        assert 'sessiongate_run_seconds_count{runtime="echo",status="ok"} 2.0' in metrics
        await ws.close()


async def test_a_repeated_idempotency_key_answers_the_same_run(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        once = await send(http, "once", 10, idempotencyKey="k-1")
        again = await send(http, "once", 10, idempotencyKey="k-1")
        assert (once["status"], once["reply"]) == ("ok", "echo: once")
        assert (again["status"], again["reply"], again["runId"]) == ("ok", "echo: once",
                                                                      once["runId"])  # fmt: skip
        assert again["duplicate"] is True and "duplicate" not in once
        # a repeat after the run finished answers from the store, whatever it waits for
        fire = await send(http, "once", 0, idempotencyKey="k-1")
        assert (fire["status"], fire["reply"], fire["runId"]) == ("ok", "echo: once",
                                                                  once["runId"])  # fmt: skip
        assert [m[:2] for m in await transcript(http)] == [(1, "user"), (2, "assistant")]


async def test_after_a_reset_and_a_delete_the_old_incarnation_gets_nothing(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    key = "agent:atlas:cron:nightly"
    strict = {"rules": [{"match": "agent:atlas:cron:*", "createOnMiss": False}]}
    async with serve(config_factory(gateway__sessions=strict)) as gw, client_for(gw) as http:
        await gw.gateway.create_session(key, "cli", "test")
        args = {"sessionKey": key, "message": "before", "timeoutSeconds": 10}
        body = {"tool": "sessions_send", "args": args}
        assert (await http.post("/tools/invoke", json=body)).json()["result"]["status"] == "ok"
        reset = await http.post(f"/v1/sessions/{key}/reset", json={})
        assert reset.status_code == 200, reset.text
        # this process remembers the session's old incarnation: the store refuses the write
        # (SESSION_RESET), the address is resolved again, and the send lands in the fresh one
        args["message"] = "after"
        after = (await http.post("/tools/invoke", json=body)).json()["result"]
        assert (after["status"], after["reply"]) == ("ok", "echo: after")
        listed = await http.get(f"/v1/sessions/{key}/messages")
        messages = listed.json()["result"]["messages"]
        assert [(m["seq"], m["content"]) for m in messages] == [(1, "after"), (2, "echo: after")]
        deleted = await http.request("DELETE", f"/v1/sessions/{key}")
        assert deleted.status_code == 200, deleted.text
        refused = (await http.post("/tools/invoke", json=body)).json()
        assert refused["error"]["code"] == "SESSION_DELETED"
        assert await gw.gateway.store.history(key) == []


async def test_concurrent_sends_to_one_session_keep_each_reply_after_its_message(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        answers = await asyncio.gather(*(send(http, f"m{i}", 10 * (i % 2)) for i in range(20)))
        assert {a["status"] for a in answers} == {"ok", "accepted"}
        stored = await transcript(http)
        assert [m[0] for m in stored] == list(range(1, 41))
        for message, reply in zip(stored[::2], stored[1::2], strict=True):
            assert (message[1], reply[1]) == ("user", "assistant")
            assert (reply[2], reply[3]) == (f"echo: {message[2]}", message[3])
        assert len({m[3] for m in stored}) == 20
