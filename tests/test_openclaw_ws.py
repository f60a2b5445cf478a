"""OpenClaw's gateway protocol on the WebSocket at `/`, driven the way OpenClaw's CLI drives it.

The replay test sends the client side of a recording of the real CLI
(tests/fixtures/openclaw-2026.5.7/cli-frames.jsonl) to a real gateway on a loopback port
and checks that each answer carries every field the recorded OpenClaw answer had
(save the ones documented as not served) and no error key the CLI would choke on.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sessiongate.config import SessionGateConfig
from sessiongate.resolver import Caller
from sessiongate.server import openclaw_ws
from tests.helpers import (
    FIXTURE,
    INCIDENT_KEY,
    assert_error_object,
    openclaw_client,
    openclaw_url,
    postgres_schema,
    recv,
)
from tests.helpers import openclaw_request as request

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

# Fields of OpenClaw's answers that sessiongate does not serve (docs/migrating-from-openclaw.md).
NOT_SERVED = {
    "hello-ok": {"snapshot", "canvasHostUrl", "auth.deviceToken", "auth.issuedAtMs"},
    "agent": {
        f"result.meta.{name}"
        for name in (
            "agentMeta",
            "systemPromptReport",
            "executionTrace",
            "requestShaping",
            "replayInvalid",
            "livenessState",
        )
    },
    "chat.history": {"messages"},  # compared message by message below
    "event:agent": {"data.livenessState"},
}
SERVER_PUSHED = {"health"}  # OpenClaw's periodic health broadcast: not sent here


def fixture_connections() -> list[list[dict[str, Any]]]:
    conns: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for line in FIXTURE.read_text().splitlines():
        frame = json.loads(line)
        if "json" in frame:
            conns[frame["conn"]].append(frame)
    return [conns[c] for c in sorted(conns)]


def missing_fields(recorded: Any, ours: Any, skip: set[str], path: str = "") -> list[str]:
    """Paths of `recorded` (objects only, recursively) that `ours` lacks."""
    if not isinstance(recorded, dict):
        return []
    if not isinstance(ours, dict):
        return [path or "(root)"]
    missing = []
    for key, value in recorded.items():
        where = f"{path}.{key}" if path else key
        if where in skip:
            continue
        if key not in ours:
            missing.append(where)
        else:
            missing += missing_fields(value, ours[key], skip, where)
    return missing


async def next_non_pushed(ws: ClientConnection) -> dict[str, Any]:
    while True:
        frame = await recv(ws)
        if frame.get("event") not in ("tick",):
            return frame


async def replay(gw: Any, recorded: list[dict[str, Any]]) -> None:
    sent = [f["json"] for f in recorded if f["dir"] == "c->s"]
    answers = [f["json"] for f in recorded if f["dir"] == "s->c"]
    async with connect(openclaw_url(gw)) as ws:
        challenge = await recv(ws)
        assert challenge["event"] == "connect.challenge"
        assert set(challenge["payload"]) == set(answers[0]["payload"]) == {"nonce", "ts"}
        expected = [a for a in answers[1:] if a.get("event") not in SERVER_PUSHED]
        for frame in sent:
            if frame["method"] == "connect":
                frame["params"]["auth"]["token"] = gw.token
                frame["params"]["device"]["nonce"] = challenge["payload"]["nonce"]
            await ws.send(json.dumps(frame))
            while expected and (expected[0].get("id") == frame["id"] or "event" in expected[0]):
                want = expected.pop(0)
                got = await next_non_pushed(ws)
                check_answer(frame["method"], want, got)


def check_answer(method: str, want: dict[str, Any], got: dict[str, Any]) -> None:
    assert got["type"] == want["type"], (want, got)
    if want["type"] == "event":
        assert got["event"] == want["event"], (want, got)
        skip = {f"payload.{path}" for path in NOT_SERVED.get(f"event:{want['event']}", set())}
    else:
        assert got["id"] == want["id"]
        if not want["ok"]:
            error = assert_error_object(got)
            assert "agent:atlas:nope:1" in error["message"]
            return
        assert got["ok"], got
        skip = NOT_SERVED.get(want["payload"].get("type") or method, set())
        skip = {f"payload.{path}" for path in skip}
    assert missing_fields(want, got, skip) == [], (method, got)


async def test_replay_of_the_openclaw_cli_gets_every_field_it_reads(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        operator = Caller(None, "test")
        send = {"sessionKey": "agent:atlas:main", "message": "hello from cli", "timeoutSeconds": 5}
        await gw.gateway.invoke("sessions_send", send, operator)
        connections = fixture_connections()
        assert len(connections) == 5
        for recorded in connections:
            await replay(gw, recorded)
        history = await gw.gateway.store.history("agent:atlas:main", limit=50)
        contents = [m.content for m in history if m.role == "user"]
        assert contents == ["hello from cli", "via chat.send", "via gateway call agent"]


async def test_chat_history_messages_have_openclaw_shape(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    recorded = next(
        f["json"]["payload"]
        for f in json.loads("[" + ",".join(FIXTURE.read_text().splitlines()) + "]")
        if f.get("dir") == "s->c" and "messages" in f.get("json", {}).get("payload", {})
    )
    async with serve(config_factory()) as gw:
        send = {"sessionKey": "main", "message": "hello from cli", "timeoutSeconds": 5}
        await gw.gateway.invoke("sessions_send", send, Caller(None, "test"))
        async with await openclaw_client(gw, ["operator.read"]) as ws:
            answer = await request(ws, "h", "chat.history", sessionKey="main", limit=2)
    messages = answer["payload"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == [{"type": "text", "text": "hello from cli"}]
    for want, got in zip(recorded["messages"], messages, strict=True):
        assert set(want) - {"api", "provider", "model", "usage", "stopReason", "responseId"} <= set(
            got
        )


async def test_refusal_under_create_on_miss_false_is_session_not_found_and_creates_nothing(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw:
        async with await openclaw_client(gw, ["operator.write"]) as ws:
            for method, params in (
                ("agent", {"sessionKey": INCIDENT_KEY, "message": "hi", "idempotencyKey": "k1"}),
                ("chat.send", {"sessionKey": INCIDENT_KEY, "message": "hi"}),
                ("chat.history", {"sessionKey": INCIDENT_KEY}),
                ("sessions.resolve", {"key": INCIDENT_KEY}),
            ):
                error = assert_error_object(await request(ws, method, method, **params))
                assert error["code"] == "SESSION_NOT_FOUND", error
                assert error["details"]["requestedKey"] == INCIDENT_KEY
                assert error["details"]["suggestions"] == ["agent:atlas:main"]
                assert error["message"].startswith(f"No session found: {INCIDENT_KEY}")
                assert "did you mean agent:atlas:main?" in error["message"]
        assert await gw.gateway.store.count_sessions() == 2
        assert await gw.gateway.store.history("agent:atlas:main") == []
        await gw.gateway.audit.flush()
    audit = [json.loads(line) for line in Path(config.audit_path).read_text().splitlines()]
    refused = [a for a in audit if a.get("requestedKey") == INCIDENT_KEY]
    assert len(refused) == 4, audit
    assert {a["caller"]["entryPoint"] for a in refused} == {"openclaw"}, refused


async def test_create_on_miss_true_creates_like_every_other_surface(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        async with await openclaw_client(gw, ["operator.write"]) as ws:
            params = {"sessionKey": "agent:peggy:main", "message": "hi", "idempotencyKey": "a"}
            final = await agent_turn(ws, "r", params)
        assert final["payload"]["result"]["payloads"][0]["text"] == "echo: hi"
        record = await gw.gateway.store.find("agent:peggy:main")
        assert record is not None


async def agent_turn(ws: ClientConnection, rid: str, params: dict[str, Any]) -> dict[str, Any]:
    """Send `agent`; return its final answer after checking the accepted one and the events."""
    await ws.send(json.dumps({"type": "req", "id": rid, "method": "agent", "params": params}))
    accepted = await next_non_pushed(ws)
    assert accepted["ok"] and accepted["payload"]["status"] == "accepted", accepted
    run_id = accepted["payload"]["runId"]
    events = []
    while True:
        frame = await next_non_pushed(ws)
        if frame["type"] == "res":
            assert frame["id"] == rid
            if frame["ok"]:
                assert frame["payload"]["runId"] == run_id
            frame["events"] = events
            return frame
        assert frame["payload"]["runId"] == run_id
        events.append(frame)


async def test_agent_streams_openclaw_events_in_order(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with (
        serve(config_factory()) as gw,
        await openclaw_client(gw, ["operator.write"]) as ws,
    ):
        params = {"agentId": "peggy", "message": "yo", "timeout": 30, "deliver": False}
        final = await agent_turn(ws, "1", {**params, "idempotencyKey": "run-1"})
    assert final["payload"]["runId"] == "run-1"
    shapes = [
        (e["event"], e["payload"].get("stream") or e["payload"]["state"]) for e in final["events"]
    ]
    assert shapes == [
        ("agent", "lifecycle"),
        ("agent", "assistant"),
        ("chat", "delta"),
        ("agent", "lifecycle"),
        ("chat", "final"),
    ]
    assert [e["payload"]["seq"] for e in final["events"]] == [1, 2, 3, 4, 5]
    assert all(e["payload"]["sessionKey"] == "agent:peggy:main" for e in final["events"])
    seqs = [e["seq"] for e in final["events"]]
    assert seqs == sorted(seqs)


async def test_repeated_idempotency_key_returns_the_same_run_never_a_second(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        async with await openclaw_client(gw, ["operator.write"]) as ws:
            params = {"sessionKey": "main", "message": "once", "idempotencyKey": "same"}
            first = await agent_turn(ws, "1", params)
            again = await agent_turn(ws, "2", params)
            assert first["payload"]["runId"] == again["payload"]["runId"] == "same"
            assert again["payload"]["result"] == {
                **first["payload"]["result"],
                "meta": again["payload"]["result"]["meta"],
            }
            chat = {"sessionKey": "main", "message": "chat once", "idempotencyKey": "c"}
            sent = [await request(ws, f"c{i}", "chat.send", **chat) for i in range(3)]
        assert [s["payload"]["status"] for s in sent] == ["started", "in_flight", "in_flight"]
        assert {s["payload"]["runId"] for s in sent} == {"c"}
        history = await gw.gateway.store.history("agent:atlas:main")
        assert [m.content for m in history if m.role == "user"] == ["once", "chat once"]


async def test_concurrent_repeats_of_one_idempotency_key_start_one_run(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    import asyncio

    async with serve(config_factory()) as gw:
        args = {"sessionKey": "main", "message": "m", "idempotencyKey": "k", "timeoutSeconds": 5}
        operator = Caller(None, "test")
        results = await asyncio.gather(
            *(gw.gateway.invoke("sessions_send", args, operator) for _ in range(5))
        )
        assert len({r["runId"] for r in results}) == 1
        assert {r["reply"] for r in results} == {"echo: m"}
        assert sum(1 for r in results if not r.get("duplicate")) == 1
        history = await gw.gateway.store.history("agent:atlas:main")
        assert [m.content for m in history] == ["m", "echo: m"]


async def test_a_send_cut_off_mid_intake_is_answered_on_its_repeat(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    """The CLI loses its connection while its `chat.send` is being stored, and sends it again
    with the same idempotency key (what the key is for): the repeat is answered with the one
    run, not left waiting on the first attempt's abandoned claim."""
    import asyncio

    async with serve(config_factory()) as gw:
        store = gw.gateway.runs.store
        entered, release = asyncio.Event(), asyncio.Event()
        accept = store.accept_answered

        async def slow_accept(*args: Any, **kwargs: Any) -> Any:
            entered.set()
            await release.wait()
            return await accept(*args, **kwargs)

        store.accept_answered = slow_accept
        chat = {"sessionKey": "main", "message": "once", "idempotencyKey": "k-lost"}
        ws = await openclaw_client(gw, ["operator.write"])
        frame = {"type": "req", "id": "c1", "method": "chat.send", "params": chat}
        await ws.send(json.dumps(frame))
        await asyncio.wait_for(entered.wait(), 10)
        await ws.close()  # the connection's requests are cancelled mid-intake
        await asyncio.sleep(0.1)
        release.set()
        args = {**chat, "timeoutSeconds": 5}
        again = await gw.gateway.invoke("sessions_send", args, Caller(None, "test"))
        store.accept_answered = accept
        assert (again["status"], again.get("reply"), again["duplicate"]) == ("ok", "echo: once",
                                                                             True)  # fmt: skip
        history = await gw.gateway.store.history("agent:atlas:main")
        assert [(m.role, m.content) for m in history] == [("user", "once"),
                                                          ("assistant", "echo: once")]  # fmt: skip


async def test_scopes_are_enforced(serve: Serve, config_factory: ConfigFactory) -> None:
    async with serve(config_factory()) as gw:
        async with await openclaw_client(gw, ["operator.read"]) as ws:
            for method in ("agent", "chat.send"):
                answer = await request(ws, method, method, sessionKey="main", message="x")
                error = assert_error_object(answer)
                assert error["code"] == "FORBIDDEN"
                assert "missing scope: operator.write" in error["message"]
            assert (await request(ws, "l", "sessions.list"))["ok"]
        async with await openclaw_client(gw, []) as ws:
            error = assert_error_object(await request(ws, "l", "sessions.list"))
            assert "missing scope: operator.read" in error["message"]
        async with await openclaw_client(gw, ["operator.write"]) as ws:  # write includes read
            listed = await request(ws, "l", "sessions.list")
        assert {s["key"] for s in listed["payload"]["sessions"]} == {
            "agent:atlas:main",
            "agent:peggy:main",
        }
        assert await gw.gateway.store.history("agent:atlas:main") == []


async def test_handshake_refusals_name_their_reason_and_close(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        base = {"minProtocol": 3, "maxProtocol": 3, "role": "operator", "auth": {"token": gw.token}}
        cases = [
            ("connect", {**base, "auth": {"token": "wrong"}}, "UNAUTHORIZED"),
            ("connect", {**base, "maxProtocol": 2, "minProtocol": 1}, "INVALID_REQUEST"),
            ("connect", {**base, "role": "node"}, "FORBIDDEN"),
            ("health", {}, "UNAUTHORIZED"),
        ]
        for method, params, code in cases:
            async with connect(openclaw_url(gw)) as ws:
                assert (await recv(ws))["event"] == "connect.challenge"
                error = assert_error_object(await request(ws, "c", method, **params))
                assert error["code"] == code, error
                with pytest.raises(ConnectionClosed):
                    await ws.recv()


async def test_unsupported_methods_and_params_are_refused_by_name(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        async with await openclaw_client(gw, ["operator.write"]) as ws:
            error = assert_error_object(await request(ws, "1", "config.get"))
            assert error["code"] == "INVALID_REQUEST"
            assert "unknown method: config.get" in error["message"]
            assert "chat.send" in error["message"]
            answer = await request(ws, "2", "agent", message="x", deliver=True)
            assert "deliver is not supported" in assert_error_object(answer)["message"]
            answer = await request(ws, "3", "agent", message="x", thinking="high")
            assert "thinking" in assert_error_object(answer)["message"]
            health = await request(ws, "4", "health")
        assert health["payload"]["ok"] is True
        assert health["payload"]["defaultAgentId"] == "atlas"
        assert await gw.gateway.store.history("agent:atlas:main") == []


async def test_ticks_keep_a_quiet_connection_alive(
    serve: Serve, config_factory: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openclaw_ws, "TICK_INTERVAL_MS", 50)
    async with (
        serve(config_factory()) as gw,
        await openclaw_client(gw, ["operator.read"]) as ws,
    ):
        ticks = [await recv(ws) for _ in range(2)]
    assert [t["event"] for t in ticks] == ["tick", "tick"]
    assert ticks[0]["seq"] < ticks[1]["seq"]
    assert isinstance(ticks[0]["payload"]["ts"], int)


async def test_a_client_that_never_connects_is_closed_by_the_connect_deadline(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__limits={"connectTimeoutSeconds": 0.2})
    async with serve(config) as gw, connect(openclaw_url(gw)) as ws:
        assert (await recv(ws))["event"] == "connect.challenge"
        with pytest.raises(ConnectionClosed):
            await ws.recv()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_repeat_after_a_restart_returns_the_stored_run(
    serve: Serve, config_factory: ConfigFactory, backend: str
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        overrides: dict[str, Any] = {}
        if backend == "postgres":
            overrides["storage"] = {"url": await stack.enter_async_context(postgres_schema())}
        config = config_factory(**overrides)
        params = {"sessionKey": "main", "message": "once", "idempotencyKey": "restart"}
        finals = []
        for _ in range(2):  # two gateway lifetimes on one store
            async with serve(config) as gw, await openclaw_client(gw, ["operator.write"]) as ws:
                finals.append(await agent_turn(ws, "1", params))
                history = await gw.gateway.store.history("agent:atlas:main")
        assert [f["payload"]["runId"] for f in finals] == ["restart", "restart"]
        assert finals[1]["payload"]["result"]["payloads"] == [
            {"text": "echo: once", "mediaUrl": None}
        ]
        assert [m.content for m in history] == ["once", "echo: once"]
