"""The WebSocket surface over a real connection: handshake, frames, streamed runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sessiongate.config import SessionGateConfig
from tests.helpers import INCIDENT_KEY, connected
from tests.helpers import ws_request as request

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]


async def test_agent_streams_run_events_then_answers(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        ws = await connected(gw)
        await ws.send(
            json.dumps(
                {
                    "type": "req",
                    "id": "a1",
                    "method": "agent",
                    "params": {"sessionKey": "MAIN", "message": "hi"},
                }
            )
        )
        frames = [json.loads(await ws.recv()) for _ in range(4)]
        events = [f for f in frames if f["type"] == "event"]
        assert [e["event"] for e in events] == ["run.started", "run.delta", "run.completed"]
        assert [e["seq"] for e in events] == [1, 2, 3]
        final = frames[-1]
        assert final["type"] == "res" and final["id"] == "a1" and final["ok"] is True
        payload = final["payload"]
        assert (payload["status"], payload["reply"]) == ("ok", "echo: hi")
        assert payload["sessionKey"] == "agent:atlas:main"
        assert {e["payload"]["runId"] for e in events} == {payload["runId"]}
        await ws.close()


async def test_strict_agent_method_refuses_the_incident_key(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw:
        ws = await connected(gw, sessionKey="agent:peggy:main")
        answer = await request(ws, 1, "agent", sessionKey=INCIDENT_KEY, message="hi")
        assert answer["ok"] is False
        assert answer["error"]["code"] == "SESSION_NOT_FOUND"
        assert answer["error"]["details"]["suggestions"] == ["agent:atlas:main"]
        listed = await request(ws, 2, "sessions.list")
        keys = [s["key"] for s in listed["payload"]["sessions"]]
        assert INCIDENT_KEY not in keys and "agent:atlas:main" in keys
        resolved = await request(ws, 3, "sessions.resolve", sessionKey="Agent:Atlas:Main")
        assert resolved["payload"]["session"]["key"] == "agent:atlas:main"
        await ws.close()


async def test_malformed_frames_get_errors_and_the_connection_stays_open(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__maxBodyBytes=4096)
    async with serve(config) as gw:
        ws = await connected(gw)
        bad_frames = [
            "not json",
            "[1,2,3]",
            json.dumps({"type": "req", "method": "sessions.list"}),
            json.dumps({"type": "nope", "id": 7, "method": "sessions.list"}),
            json.dumps({"type": "req", "id": 8, "method": "no.such.method", "params": {}}),
            json.dumps({"type": "req", "id": 9, "method": "agent", "params": {"message": 1}}),
            json.dumps({"type": "req", "id": 10, "method": "sessions.list", "params": []}),
            json.dumps({"type": "req", "id": 11, "method": "x", "params": {"p": "y" * 5000}}),
        ]
        for text in bad_frames:
            await ws.send(text)
            frame = json.loads(await ws.recv())
            assert frame["type"] == "res" and frame["ok"] is False, text
            assert frame["error"]["code"] in ("INVALID_REQUEST", "PAYLOAD_TOO_LARGE"), frame
        await ws.send(b"\x00binary")
        assert json.loads(await ws.recv())["ok"] is False
        still = await request(ws, 12, "sessions.history", sessionKey="main")
        assert still["ok"] is True and still["payload"]["sessionKey"] == "agent:atlas:main"
        await ws.close()


@pytest.mark.parametrize("first", ["sessions.list", "connect-bad-token", "connect-no-token"])
async def test_the_first_request_must_be_a_valid_connect(
    serve: Serve, config_factory: ConfigFactory, first: str
) -> None:
    async with serve(config_factory()) as gw:
        ws = await connect(gw.ws_url)
        params = {"token": "wrong-token"} if first == "connect-bad-token" else {}
        method = "sessions.list" if first == "sessions.list" else "connect"
        answer = await request(ws, 1, method, **params)
        assert answer["ok"] is False
        assert answer["error"]["code"] == "UNAUTHORIZED"
        with pytest.raises(ConnectionClosed):
            await ws.recv()


async def test_tools_invoke_over_ws_honours_the_allow_list(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__tools={"allow": ["sessions_spawn"]})
    async with serve(config) as gw:
        ws = await connected(gw)
        spawned = await request(
            ws, 1, "tools.invoke", tool="sessions_spawn", args={"agentId": "atlas", "task": "go"}
        )
        assert spawned["payload"]["childSessionKey"].startswith("agent:atlas:subagent:")
        denied = await request(ws, 2, "tools.invoke", tool="sessions_send", args={})
        assert denied["error"]["code"] == "FORBIDDEN"
        await ws.close()


async def test_subscribe_streams_events_of_runs_started_elsewhere(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        ws = await connected(gw)
        subscribed = await request(ws, 1, "sessions.subscribe", sessionKey="MAIN")
        assert subscribed["payload"]["sessionKey"] == "agent:atlas:main"
        other = await connected(gw)
        await request(other, 1, "agent", sessionKey="agent:peggy:main", message="not this one")
        answer = await request(other, 2, "agent", sessionKey="agent:atlas:main", message="hi")
        frames = [json.loads(await ws.recv()) for _ in range(3)]
        assert [f["event"] for f in frames] == ["run.started", "run.delta", "run.completed"]
        assert {f["payload"]["runId"] for f in frames} == {answer["payload"]["runId"]}
        dropped = await request(ws, 2, "sessions.unsubscribe", sessionKey="agent:atlas:main")
        assert dropped["payload"]["subscribed"] == []
        again = await request(ws, 3, "sessions.unsubscribe", sessionKey="agent:atlas:main")
        assert again["error"]["code"] == "INVALID_REQUEST"
        await ws.close()
        await other.close()


async def test_a_connected_clients_requests_and_frames_skip_the_asgi_queue(
    serve: Serve, config_factory: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once connected, a well-formed request is taken from the protocol as it arrives and its
    frames are written at once; a binary frame still goes the ASGI way and is answered."""
    from sessiongate.server import limits, ws

    taken: list[bool] = []
    written: list[bool] = []
    offer, write_now = ws.Connection.offer, limits._GuardedWsProtocol.write_now

    def counting_offer(self: ws.Connection, text: str) -> bool:
        taken.append(offer(self, text))
        return taken[-1]

    def counting_write(self: Any, text: str, flush: bool = False) -> bool:
        written.append(write_now(self, text, flush))
        return written[-1]

    monkeypatch.setattr(ws.Connection, "offer", counting_offer)
    monkeypatch.setattr(limits._GuardedWsProtocol, "write_now", counting_write)
    async with serve(config_factory()) as gw:
        socket = await connected(gw)
        answer = await request(socket, 1, "agent", sessionKey="main", message="hi")
        assert answer["payload"]["reply"] == "echo: hi"
        await socket.send(b"\x00binary")
        assert json.loads(await socket.recv())["ok"] is False
        assert (await request(socket, 2, "sessions.list"))["ok"] is True
        await socket.close()
    assert taken == [True, True]
    assert written and all(written)
