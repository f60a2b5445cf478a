"""The LLM runtime's model call: the body it sends, the head it sends it with, the answers
it reads, its retries, and each failure as the error the SDK raised for it (the run's
structured error is `RunFailedError("<SDK error class>: <message>")`)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sessiongate.runtime.llm import LlmRuntime, ModelEndpoint
from sessiongate.runtime.llm_http import retry_delay, should_retry
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


@asynccontextmanager
async def opened_runtime(
    url: str, timeout: float = 10.0, offered: tuple[str, ...] = ("sessions_send",)
) -> AsyncIterator[Any]:
    """`runtime`, its model client closed on the way out."""
    llm = runtime(url, timeout, offered)
    try:
        yield llm
    finally:
        await llm.close()


async def test_the_body_is_what_the_sdk_would_send_and_the_answer_is_read() -> None:
    seen: list[Request] = []
    bodies: list[bytes] = []

    async def answer(request: Request) -> Response:
        bodies.append(await request.body())
        return completion({"content": "hi"})

    async with upstream(model_app(answer, seen)) as fake, opened_runtime(fake.url) as llm:
        first = await llm._complete(MESSAGES)
        second = await llm._complete(MESSAGES)
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

    async with upstream(model_app(answer)) as fake, opened_runtime(fake.url) as llm:
        assert await llm._complete(MESSAGES) == {"role": "assistant", "content": "z"}
    assert len(calls) == 2


async def test_an_error_status_is_the_sdks_status_error() -> None:
    async def answer(request: Request) -> Response:
        return JSONResponse({"error": {"message": "no such model"}}, 404)

    async with upstream(model_app(answer)) as fake, opened_runtime(fake.url) as llm:
        with pytest.raises(openai.NotFoundError, match="no such model"):
            await llm._complete(MESSAGES)


async def test_an_answer_that_is_not_json_has_no_message() -> None:
    async def answer(request: Request) -> Response:
        return PlainTextResponse("upstream says hello")

    async with upstream(model_app(answer)) as fake, opened_runtime(fake.url) as llm:
        with pytest.raises(RuntimeError, match="has no message: upstream says hello"):
            await llm._complete(MESSAGES)


# ---------------------------------------------------------------- the head


async def test_the_head_is_the_sdks() -> None:
    """The same headers as the SDK's own `post()` sends (but those of the HTTP client)."""
    seen: list[Request] = []

    async def answer(request: Request) -> Response:
        return completion({"content": "hi"})

    async with upstream(model_app(answer, seen)) as fake:
        async with opened_runtime(fake.url) as llm:
            await llm._complete(MESSAGES)
        sdk = openai.AsyncOpenAI(base_url=f"{fake.url}/v1", api_key="key-1", timeout=10.0)
        async with sdk:
            await sdk.post("/chat/completions", content=b"{}", cast_to=bytes)
    ours, theirs = (dict(request.headers) for request in seen)
    client_own = {"host", "content-length", "accept-encoding", "connection"}
    assert {k: v for k, v in ours.items() if k not in client_own} == {
        k: v for k, v in theirs.items() if k not in client_own
    }


# ---------------------------------------------------------------- retries and failures


async def failure(url: str, timeout: float = 10.0) -> str:
    """The run's error text for one model call that fails: `<class>: <message>`."""
    async with opened_runtime(url, timeout) as llm:
        try:
            await llm._complete(MESSAGES)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
    raise AssertionError("the model call succeeded")


def attempts(seen: list[Request]) -> list[str]:
    return [request.headers["x-stainless-retry-count"] for request in seen]


async def test_a_rate_limit_is_retried_after_retry_after() -> None:
    seen: list[Request] = []

    async def answer(request: Request) -> Response:
        if len(seen) == 1:
            return JSONResponse({"error": {"message": "slow down"}}, 429, {"retry-after": "0.05"})
        return completion({"content": "now"})

    async with upstream(model_app(answer, seen)) as fake, opened_runtime(fake.url) as llm:
        assert await llm._complete(MESSAGES) == {"role": "assistant", "content": "now"}
    assert attempts(seen) == ["0", "1"]


async def test_a_server_error_is_retried_then_succeeds() -> None:
    seen: list[Request] = []

    async def answer(request: Request) -> Response:
        if len(seen) == 1:
            return PlainTextResponse("overloaded", 503)
        return completion({"content": "back"})

    async with upstream(model_app(answer, seen)) as fake, opened_runtime(fake.url) as llm:
        assert await llm._complete(MESSAGES) == {"role": "assistant", "content": "back"}
    assert attempts(seen) == ["0", "1"]


async def test_retries_end_with_the_sdks_status_error() -> None:
    seen: list[Request] = []

    async def answer(request: Request) -> Response:
        body = {"error": {"message": "rate limited"}}
        return JSONResponse(body, 429, {"retry-after-ms": "5"})

    async with upstream(model_app(answer, seen)) as fake:
        error = await failure(fake.url)
    assert error == "RateLimitError: Error code: 429 - rate limited"
    assert attempts(seen) == ["0", "1", "2"]


async def test_x_should_retry_false_is_not_retried() -> None:
    seen: list[Request] = []

    async def answer(request: Request) -> Response:
        body = {"error": {"message": "broken for good"}}
        return JSONResponse(body, 500, {"x-should-retry": "false"})

    async with upstream(model_app(answer, seen)) as fake:
        error = await failure(fake.url)
    assert error == "InternalServerError: Error code: 500 - broken for good"
    assert attempts(seen) == ["0"]


async def test_a_client_error_is_not_retried_and_its_body_kept() -> None:
    seen: list[Request] = []

    async def answer(request: Request) -> Response:
        return PlainTextResponse("no such thing", 404)

    async with upstream(model_app(answer, seen)) as fake:
        error = await failure(fake.url)
    assert error == "NotFoundError: Error code: 404"
    assert attempts(seen) == ["0"]


async def test_a_bad_json_answer_has_no_message() -> None:
    async def answer(request: Request) -> Response:
        return Response(b'{"choices": [', media_type="application/json")

    async with upstream(model_app(answer)) as fake:
        error = await failure(fake.url)
    assert error == """RuntimeError: the model's answer has no message: {"choices": ["""


def test_the_retry_policy_is_the_sdks() -> None:
    assert [should_retry(s, {}) for s in (400, 404, 408, 409, 422, 429, 500, 503)] == [
        False, False, True, True, False, True, True, True,
    ]  # fmt: skip
    assert should_retry(400, {"x-should-retry": "true"})
    assert not should_retry(429, {"retry-after": "121"})  # longer than 2 minutes
    assert retry_delay(0, {"retry-after-ms": "250"}) == 0.25
    assert retry_delay(1, {"retry-after": "3"}) == 3.0
    for taken, most in ((0, 0.5), (1, 1.0), (4, 8.0), (9, 8.0)):
        assert most * 0.75 <= retry_delay(taken, None) <= most
        assert most * 0.75 <= retry_delay(taken, {"retry-after": "200"}) <= most


@asynccontextmanager
async def raw_server(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[tuple[str, list[int]]]:
    """A loopback server speaking raw bytes; the list counts its connections."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        ends = (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError)
        with contextlib.suppress(*ends):  # the client closed, or the test ended
            await on_connect(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


async def test_a_refused_connection_is_a_connection_error_after_retries() -> None:
    async with raw_server(lambda r, w: asyncio.sleep(0)) as (url, _):
        pass  # closed: nothing listens on its port any more
    assert await failure(url) == "APIConnectionError: Connection error."


async def test_a_connection_closed_before_an_answer_is_a_connection_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with raw_server(hang_up) as (url, connections):
        assert await failure(url) == "APIConnectionError: Connection error."
    assert len(connections) == 3  # retried twice


async def test_an_answer_slower_than_the_timeout_is_a_timeout_after_retries() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # until the client gives up and closes
        writer.close()

    async with raw_server(never) as (url, connections):
        assert await failure(url, timeout=0.2) == "APITimeoutError: Request timed out."
    assert len(connections) == 3


async def test_a_garbled_answer_is_a_connection_error() -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    async with raw_server(garble) as (url, _):
        assert await failure(url) == "APIConnectionError: Connection error."


async def test_connections_are_kept_alive_between_calls() -> None:
    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            answer = b'{"choices": [{"message": {"role": "assistant", "content": "k"}}]}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()

    async with raw_server(keep) as (url, connections), opened_runtime(url) as llm:
        for _ in range(3):
            assert await llm._complete(MESSAGES) == {"role": "assistant", "content": "k"}
    assert len(connections) == 1


async def test_through_a_proxy_from_the_environment_the_sdk_posts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy applies: the SDK's own client sends (httpx2 honours the proxy)."""
    proxied: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        proxied.append(head.split(b"\r\n")[0])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        answer = b'{"choices": [{"message": {"role": "assistant", "content": "via"}}]}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
        await writer.drain()
        writer.close()

    async with raw_server(proxy) as (proxy_url, _):
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with opened_runtime("http://model.invalid:9") as llm:
            assert await llm._complete(MESSAGES) == {"role": "assistant", "content": "via"}
    assert proxied == [b"POST http://model.invalid:9/v1/chat/completions HTTP/1.1"]
