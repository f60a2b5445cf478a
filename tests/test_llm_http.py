"""The LLM runtime's model call: the body it sends, the answers it reads, and how each
failure of the HTTP client (aiohttp under the SDK's httpx2 client) reaches the SDK."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sessiongate.runtime.llm import LlmRuntime, ModelEndpoint
from sessiongate.runtime.llm_http import model_http_client
from tests.helpers import completion, upstream

Handler = Callable[[Request], Awaitable[Response]]
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "héllo"}]


def model_app(handler: Handler, seen: list[Request] | None = None) -> Starlette:
    async def chat(request: Request) -> Response:
        if seen is not None:
            seen.append(request)
        return await handler(request)

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def runtime(url: str, timeout: float = 10.0, offered: tuple[str, ...] = ("sessions_send",)) -> Any:
    return LlmRuntime(ModelEndpoint(f"{url}/v1", "key-1", timeout), "m-1", "be brief", 4, offered)


async def test_the_body_is_what_the_sdk_would_send_and_the_answer_is_read() -> None:
    seen: list[Request] = []
    bodies: list[bytes] = []

    async def answer(request: Request) -> Response:
        bodies.append(await request.body())
        return completion({"content": "hi"})

    async with upstream(model_app(answer, seen)) as fake:
        llm = runtime(fake.url)
        try:
            first = await llm._complete(MESSAGES)
            second = await llm._complete(MESSAGES)
        finally:
            await llm.close()
    assert first == second == {"role": "assistant", "content": "hi"}
    from openai._utils._json import openapi_dumps

    expected = {"model": "m-1", "messages": MESSAGES, "tools": llm.tools}
    assert bodies[0] == openapi_dumps(expected)  # byte for byte
    headers = seen[0].headers
    assert headers["authorization"] == "Bearer key-1"
    assert headers["content-type"] == "application/json"
    assert headers["x-stainless-retry-count"] == "0"
    assert int(headers["content-length"]) == len(bodies[0])


async def test_a_message_the_sdk_could_not_encode_is_sent_escaped() -> None:
    bodies: list[bytes] = []

    async def answer(request: Request) -> Response:
        bodies.append(await request.body())
        return completion({"content": "ok"})

    async with upstream(model_app(answer)) as fake:
        llm = runtime(fake.url, offered=())
        try:  # a lone surrogate: the SDK's encoder (ensure_ascii=False) raised on it
            await llm._complete([{"role": "user", "content": "a\ud800b"}])
        finally:
            await llm.close()
    assert b'"a\\ud800b"' in bodies[0]
    assert b'"tools"' not in bodies[0]  # no tools offered: none sent


async def test_a_gzipped_answer_is_decoded_and_a_rate_limit_is_retried() -> None:
    calls: list[int] = []

    async def answer(request: Request) -> Response:
        calls.append(1)
        if len(calls) == 1:  # the SDK retries a 429 after retry-after-ms
            return JSONResponse({"error": "slow down"}, 429, {"retry-after-ms": "10"})
        raw = json.dumps({"choices": [{"message": {"role": "assistant", "content": "z"}}]})
        headers = {"content-encoding": "gzip", "content-type": "application/json"}
        return Response(gzip.compress(raw.encode()), headers=headers)

    async with upstream(model_app(answer)) as fake:
        llm = runtime(fake.url)
        try:
            assert await llm._complete(MESSAGES) == {"role": "assistant", "content": "z"}
        finally:
            await llm.close()
    assert len(calls) == 2


async def test_an_error_status_is_the_sdks_status_error() -> None:
    async def answer(request: Request) -> Response:
        return JSONResponse({"error": {"message": "no such model"}}, 404)

    async with upstream(model_app(answer)) as fake:
        llm = runtime(fake.url)
        try:
            with pytest.raises(openai.NotFoundError, match="no such model"):
                await llm._complete(MESSAGES)
        finally:
            await llm.close()


async def test_an_answer_that_is_not_json_has_no_message() -> None:
    async def answer(request: Request) -> Response:
        return PlainTextResponse("upstream says hello")

    async with upstream(model_app(answer)) as fake:
        llm = runtime(fake.url)
        try:
            with pytest.raises(RuntimeError, match="has no message: upstream says hello"):
                await llm._complete(MESSAGES)
        finally:
            await llm.close()


# ---------------------------------------------------------------- failures, at the transport


@asynccontextmanager
async def raw_server(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ends = (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError)
        with contextlib.suppress(*ends):  # the client closed, or the test ended
            await on_connect(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def post(url: str, timeout: float = 5.0) -> httpx2.Response:
    async with model_http_client(timeout) as client:
        return await client.post(f"{url}/v1/chat/completions", content=b"{}")


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with raw_server(lambda r, w: asyncio.sleep(0)) as url:
        pass  # closed: nothing listens on its port any more
    with pytest.raises(httpx2.ConnectError):
        await post(url)


async def test_a_connection_closed_before_an_answer_is_a_protocol_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with raw_server(hang_up) as url:
        with pytest.raises(httpx2.RemoteProtocolError):
            await post(url)


async def test_an_answer_slower_than_the_timeout_is_a_read_timeout() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # until the client gives up and closes
        writer.close()

    async with raw_server(never) as url:
        with pytest.raises(httpx2.ReadTimeout):
            await post(url, timeout=0.2)


async def test_a_garbled_answer_is_a_protocol_error() -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(garble) as url:
        with pytest.raises(httpx2.RemoteProtocolError):
            await post(url)


async def test_connections_are_kept_alive_between_calls() -> None:
    connections: list[int] = []

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async with raw_server(keep) as url, model_http_client(5.0) as client:
        for _ in range(3):
            response = await client.post(f"{url}/v1/chat/completions", content=b"{}")
            assert response.json() == {}
    assert len(connections) == 1
