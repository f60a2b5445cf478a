"""Hostile clients, light: each attack of benchmarks/abuse against the real server, outcomes only.

A slow or idle client is cut off while a legitimate one is served; connections
beyond the caps are refused with 503; a pipelining client gets TOO_MANY_REQUESTS
with no work done. (Figures and timings are in benchmarks/abuse.)
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sessiongate.config import SessionGateConfig
from tests.helpers import connected, upstream
from tests.helpers import ws_request as request

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
FAST = {"headerTimeoutSeconds": 0.5, "bodyTimeoutSeconds": 0.5, "connectTimeoutSeconds": 0.5}


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def open_raw(url: str, source: str = "127.0.0.1") -> tuple[Any, Any]:
    host, port = host_port(url)
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (bounded: a hang fails the test)."""
    async with asyncio.timeout(30):
        return await reader.read()


async def legitimate_send(gw: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {gw.token}"}) as client:
        args = {"sessionKey": "main", "message": "still served"}
        response = await client.post(
            f"{gw.url}/tools/invoke", json={"tool": "sessions_send", "args": args}
        )
    body: dict[str, Any] = response.json()
    return body


async def test_slow_headers_get_408_and_a_legitimate_client_is_served(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory(gateway__limits=FAST)) as gw:
        slow = [await open_raw(gw.url, "127.0.0.2") for _ in range(5)]
        for _, writer in slow:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert (await legitimate_send(gw))["result"]["status"] == "ok"
        for reader, writer in slow:
            answer = await read_until_closed(reader)
            assert answer.startswith(b"HTTP/1.1 408 ")
            assert b"REQUEST_TIMEOUT" in answer
            writer.close()


async def test_a_connection_that_never_sends_is_closed(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory(gateway__limits=FAST)) as gw:
        reader, writer = await open_raw(gw.url)
        assert (await read_until_closed(reader)).startswith(b"HTTP/1.1 408 ")
        writer.close()


async def test_a_body_that_never_arrives_is_cut_off(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory(gateway__limits=FAST)) as gw:
        reader, writer = await open_raw(gw.url)
        writer.write(
            b"POST /tools/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + gw.token.encode()
            + b"\r\nContent-Length: 100\r\n\r\n{"
        )
        answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 408 ") or answer == b""
        writer.close()
        assert (await legitimate_send(gw))["ok"] is True


async def test_huge_headers_are_refused(serve: Serve, config_factory: ConfigFactory) -> None:
    async with serve(config_factory()) as gw:
        reader, writer = await open_raw(gw.url)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for i in range(100):
            writer.write(f"X-Filler-{i}: {'a' * 1000}\r\n".encode())
        writer.write(b"\r\n")
        answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 400 ")
        writer.close()


async def test_a_websocket_that_never_connects_is_closed(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory(gateway__limits=FAST)) as gw:
        ws = await connect(gw.ws_url)
        try:
            async with asyncio.timeout(30):
                await ws.recv()
            raise AssertionError("the connection stayed open")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            assert (closed.rcvd.code, closed.rcvd.reason) == (1008, "CONNECT_TIMEOUT")


async def hold_busy(gw: Any, source: str) -> tuple[Any, Any]:
    """A connection whose authenticated request is being answered (its body still owed)."""
    reader, writer = await open_raw(gw.url, source)
    writer.write(
        f"POST /tools/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
    )
    await writer.drain()
    return reader, writer


async def test_at_the_per_client_cap_the_oldest_idle_connection_makes_room_else_503(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    limits = {**FAST, "headerTimeoutSeconds": 60, "bodyTimeoutSeconds": 60,
              "maxConnectionsPerClient": 3}  # fmt: skip
    async with serve(config_factory(gateway__limits=limits)) as gw:
        idle = [await open_raw(gw.url, "127.0.0.2") for _ in range(3)]
        fourth = await open_raw(gw.url, "127.0.0.2")
        assert await read_until_closed(idle[0][0]) == b""  # the oldest made room
        for _, writer in [*idle[1:], fourth]:
            writer.close()
        busy = [await hold_busy(gw, "127.0.0.2") for _ in range(3)]
        await asyncio.sleep(0.2)  # their headers are in: their requests are being answered
        reader, writer = await open_raw(gw.url, "127.0.0.2")
        answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == (
            "TOO_MANY_CONNECTIONS"
        )
        writer.close()
        assert (await legitimate_send(gw))["result"]["status"] == "ok"  # from 127.0.0.1
        for _, held_writer in busy:
            held_writer.close()


async def test_at_the_total_cap_unauthenticated_connections_make_room_for_a_client(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    limits = {"headerTimeoutSeconds": 60, "bodyTimeoutSeconds": 60,
              "connectTimeoutSeconds": 60, "maxConnections": 3}  # fmt: skip
    async with serve(config_factory(gateway__limits=limits)) as gw:
        slow = await open_raw(gw.url, "127.0.0.2")
        slow[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        idle_ws = await open_raw(gw.url, "127.0.0.3")
        idle_ws[1].write(UPGRADE.encode())  # a WebSocket that never sends connect
        busy = await hold_busy(gw, "127.0.0.4")
        await asyncio.sleep(0.2)
        assert (await legitimate_send(gw))["result"]["status"] == "ok"
        shed = await read_until_closed(slow[0])
        assert shed.startswith(b"HTTP/1.1 503 ")  # the oldest, told why
        busy_too = await hold_busy(gw, "127.0.0.5")  # the cap is reached again
        await asyncio.sleep(0.2)
        assert (await legitimate_send(gw))["result"]["status"] == "ok"
        assert b"101" in await read_until_closed(idle_ws[0])  # the idle WebSocket made room
        for _, writer in (slow, idle_ws, busy, busy_too):
            writer.close()


def _held_webhook(release: asyncio.Event) -> Starlette:
    async def reply(request: Request) -> JSONResponse:
        await release.wait()
        return JSONResponse({"reply": "done"})

    return Starlette(routes=[Route("/hold", reply, methods=["POST"])])


async def test_pipelined_requests_beyond_the_budget_are_refused_with_no_work_done(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    release = asyncio.Event()
    async with upstream(_held_webhook(release)) as hook:
        agents = [
            {"id": "atlas", "default": True},
            {"id": "slow", "model": "webhook", "webhook": {"url": f"{hook.url}/hold"}},
        ]
        config = config_factory(
            gateway__limits={"maxInFlightPerConnection": 2}, agents__list=agents
        )
        async with serve(config) as gw:
            ws = await connected(gw)
            for i in range(8):
                params = {"sessionKey": "agent:slow:main", "message": f"m{i}"}
                frame = {"type": "req", "id": i, "method": "agent", "params": params}
                await ws.send(json.dumps(frame))
            refused = [json.loads(await ws.recv()) for _ in range(6)]
            assert {f["id"] for f in refused} == {2, 3, 4, 5, 6, 7}
            for frame in refused:
                assert frame["error"]["code"] == "TOO_MANY_REQUESTS"
                assert frame["error"]["retryable"] is True
            release.set()
            history = await request(ws, "h", "sessions.history", sessionKey="agent:slow:main")
            while not history["ok"] or len(history["payload"]["messages"]) < 4:
                await asyncio.sleep(0.05)
                history = await request(ws, "h", "sessions.history", sessionKey="agent:slow:main")
            users = [m["content"] for m in history["payload"]["messages"] if m["role"] == "user"]
            assert users == ["m0", "m1"]
            await ws.close()


async def shed_count(gw: Any, reason: str) -> float:
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {gw.token}"}) as client:
        text = (await client.get(f"{gw.url}/metrics")).text
    prefix = f'sessiongate_connections_shed_total{{reason="{reason}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


async def test_a_reader_that_does_not_read_is_closed_with_send_queue_full(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    limits = {"maxQueuedBytesPerConnection": 65_536, "maxInFlightPerConnection": 64}
    async with serve(config_factory(gateway__limits=limits)) as gw:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that barely reads
        sock.connect(host_port(gw.url))
        ws = await connect(gw.ws_url, sock=sock, max_queue=1)
        assert (await request(ws, 0, "connect", token=gw.token))["ok"]
        for i in range(4):
            await request(ws, i + 1, "agent", sessionKey="main", message="x" * 60_000)
        frame = {"type": "req", "method": "sessions.history", "params": {"sessionKey": "main"}}
        for i in range(64):
            await ws.send(json.dumps({**frame, "id": f"h{i}"}))
        for _ in range(600):  # the server decides; then the client reads its way to the close
            if await shed_count(gw, "send_queue_full"):
                break
            await asyncio.sleep(0.05)
        assert await shed_count(gw, "send_queue_full") == 1
        try:
            async with asyncio.timeout(30):
                while True:
                    await ws.recv()
        except ConnectionClosed:
            pass
        assert (ws.close_code, ws.close_reason) == (1013, "SEND_QUEUE_FULL")


async def test_a_token_over_its_request_rate_gets_too_many_requests(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    limits = {"requestsPerSecondPerToken": 0.001, "requestBurstPerToken": 3}
    async with serve(config_factory(gateway__limits=limits)) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as client:
            statuses = [(await client.get("/v1/sessions")).status_code for _ in range(3)]
            assert statuses == [200, 200, 200]
            over = await client.get("/v1/sessions")
            assert over.status_code == 429
            error = over.json()["error"]
            assert error["code"] == "TOO_MANY_REQUESTS" and error["retryable"] is True
            assert error["details"]["retryAfterSeconds"] > 0
            assert (await client.get("/healthz")).status_code == 200  # probes are not charged
        ws = await connected(gw)  # the same token's bucket is empty on WebSocket too
        answer = await request(ws, 1, "sessions.list")
        assert answer["error"]["code"] == "TOO_MANY_REQUESTS"
        await ws.close()
