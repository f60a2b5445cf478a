"""The LLM runtime's model call: one chat completion, POSTed on a kept-alive connection of
its own with the `openai` SDK's head, retries and error classes.

The SDK's `post()` was ~38% of the gateway's CPU for an LLM turn: per request it copies its
options, merges the URL, builds and validates the headers, makes an httpx2 `Request` and
`Response` and goes through httpx2's client wrappers; aiohttp in their place still spent
~125 µs of CPU per call building its request and reading the answer. Here the request head
is bytes made once, from the SDK's client (its auth and default headers, so what goes on
the wire is what the SDK sends), only `Content-Length` is added per call, the request is
one write, and the answer is parsed by httptools (uvicorn's C parser): ~40 µs per call.

What the SDK and its HTTP client did per call is kept, and owned here:
- retries: 2, after 0.5 s then 1 s (doubling, at most 8 s), each less a random 0-25%, or
  after what the answer's `retry-after-ms` / `retry-after` says (up to 2 minutes; a longer
  one is not retried); on 408, 409, 429, 5xx (unless `x-should-retry: false`; any status
  with `x-should-retry: true`), on a timeout and on a connection error;
  `x-stainless-retry-count` counts them;
- errors, as the SDK raises them: a status that is not 2xx is the SDK's own status error
  (`openai.RateLimitError`, `NotFoundError`, …, made by the SDK's client from the answer);
  a timeout `openai.APITimeoutError`; a connection that fails, closes before a whole
  answer or answers something that is not HTTP/1.1, `openai.APIConnectionError`;
- the timeout (the agent's provider's `timeoutSeconds`) on connecting and between reads;
  connections kept alive (1,000 at most, an idle one kept 5 s; one the server closed while
  idle is replaced at once, not counted as a retry); answers by length, in chunks or until
  the connection closes, gzip or deflate; TLS verified as the SDK's client does
  (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured); a redirect is handed to the SDK's own
  `post()`, which follows it.

Where a proxy from the environment (`HTTPS_PROXY`, `ALL_PROXY`, … not bypassed by
`NO_PROXY`) applies to the endpoint, every call is the SDK's own `post()` with its default
client, proxy included.

Imported at an LLM agent's first turn (the SDK is the `llm` extra).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import ssl
import time
import urllib.request
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httptools
import httpx2
import openai
from openai import AsyncOpenAI, Omit

__all__ = ["ModelClient", "connect", "retry_delay", "should_retry"]

PATH = "chat/completions"
MAX_RETRIES = 2  # as the SDK's defaults (openai/_constants.py)
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 120.0
MAX_CONNECTIONS = 1000
KEEPALIVE_SECONDS = 5.0
_INFINITY = ("inf", "+inf", "infinity", "+infinity")


class ModelClient(Protocol):
    async def post(self, body: bytes) -> bytes:
        """The answer's body to a chat completion request whose JSON body is `body`."""
        ...

    async def close(self) -> None: ...


async def connect(base_url: str, api_key: str, timeout_seconds: float) -> ModelClient:
    """The model client of one endpoint (called on the event loop, at the first turn)."""
    sdk = AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_seconds)
    if _proxied(str(sdk.base_url)):
        return _SdkPost(sdk)
    # the platform headers read the OS once (the SDK reads it off the loop too)
    await asyncio.to_thread(sdk.platform_headers)
    return DirectClient(sdk, timeout_seconds)


class DirectClient:
    """One chat completion per call on a kept-alive connection, with a head made once."""

    def __init__(self, sdk: AsyncOpenAI, timeout_seconds: float) -> None:
        self._sdk = sdk  # its headers, its status errors, and its post() for a redirect
        base = sdk.base_url  # the SDK's: its path ends with "/"
        self._url = base.copy_with(raw_path=base.raw_path + PATH.encode())
        self._headers = _head(sdk, timeout_seconds)
        self._timeout = timeout_seconds
        self._heads = [_request_head(self._url, self._headers, n) for n in range(MAX_RETRIES + 1)]
        self._pool = _Pool(self._url, timeout_seconds)

    async def post(self, body: bytes) -> bytes:
        for retries_taken in range(MAX_RETRIES + 1):
            left = MAX_RETRIES - retries_taken
            request = self._heads[retries_taken] + b"%d\r\n\r\n" % len(body) + body
            try:
                answer = await self._pool.exchange(request)
            except TimeoutError as exc:
                if left:
                    await asyncio.sleep(retry_delay(retries_taken, None))
                    continue
                raise openai.APITimeoutError(request=self._request(body)) from exc
            except (OSError, ssl.SSLError, _ProtocolError) as exc:
                if left:
                    await asyncio.sleep(retry_delay(retries_taken, None))
                    continue
                raise openai.APIConnectionError(request=self._request(body)) from exc
            if 200 <= answer.status < 300:
                return answer.body
            headers = answer.header_map()
            if 300 <= answer.status < 400 and "location" in headers:
                return await _SdkPost(self._sdk).post(body)  # it follows redirects
            if left and should_retry(answer.status, headers):
                await asyncio.sleep(retry_delay(retries_taken, headers))
                continue
            raise self._status_error(answer, body) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def close(self) -> None:
        self._pool.close()
        await self._sdk.close()

    def _request(self, body: bytes) -> httpx2.Request:
        """The request as the SDK's errors carry it (made only for an error)."""
        return httpx2.Request("POST", str(self._url), headers=dict(self._headers), content=body)

    def _status_error(self, answer: _Answer, body: bytes) -> openai.APIStatusError:
        # the body is already decoded: no content-encoding for httpx2 to decode again
        kept = [(k, v) for k, v in answer.headers if k.lower() != "content-encoding"]
        request = self._request(body)
        response = httpx2.Response(
            answer.status, headers=kept, content=answer.body, request=request
        )
        return self._sdk._make_status_error_from_response(response)


class _ProtocolError(Exception):
    """The connection closed before a whole answer, or what came back is not HTTP/1.1."""


@dataclass(slots=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header_map(self) -> httpx2.Headers:
        return httpx2.Headers(self.headers)


class _Pool:
    """Kept-alive connections to one origin: at most 1,000, an idle one kept 5 s."""

    def __init__(self, url: httpx2.URL, timeout_seconds: float) -> None:
        self._host = url.host
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._tls = httpx2.create_ssl_context(trust_env=True) if url.scheme == "https" else None
        self._timeout = timeout_seconds
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def exchange(self, request: bytes) -> _Answer:
        """Send `request` and read its answer, on an idle connection or a new one; one that
        the server closed while idle (nothing read) is replaced by a new one at once."""
        async with self._slots:
            connection = self._take()
            if connection is not None:
                try:
                    return await self._use(connection, request)
                except _ProtocolError:
                    if connection.received:
                        raise
            return await self._use(await self._connect(), request)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _use(self, connection: _Connection, request: bytes) -> _Answer:
        answer = await connection.exchange(request, self._timeout)
        if connection.reusable():
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return answer

    def _take(self) -> _Connection | None:
        expired = time.monotonic() - KEEPALIVE_SECONDS
        while self._idle:
            connection = self._idle.pop()
            if connection.idle_since > expired and connection.reusable():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        name = self._host if self._tls is not None else None
        async with asyncio.timeout(self._timeout):
            _, connection = await loop.create_connection(
                _Connection, self._host, self._port, ssl=self._tls, server_hostname=name
            )
        return connection


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: a request written whole, its answer parsed by httptools."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[_Answer] | None = None
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._complete = False
        self._keep_alive = False  # what the answer's head says (read as it completes)
        self._until_closed = False
        self._last_read = 0.0
        self._deadline: asyncio.TimerHandle | None = None
        self.received = False  # any byte of the current answer
        self.idle_since = 0.0

    async def exchange(self, request: bytes, read_seconds: float) -> _Answer:
        """Write `request`; its answer, with at most `read_seconds` between reads."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise _ProtocolError("the connection is closed")
        loop = asyncio.get_running_loop()
        self._headers, self._body, self._complete, self.received = [], [], False, False
        self._keep_alive = self._until_closed = False
        answer: asyncio.Future[_Answer] = loop.create_future()
        self._answer = answer
        self._last_read = loop.time()
        self._deadline = loop.call_at(
            self._last_read + read_seconds, self._check_deadline, read_seconds
        )
        try:
            transport.write(request)
            return await answer
        finally:
            self._deadline.cancel()
            self._answer = None

    def reusable(self) -> bool:
        transport = self._transport
        return (
            self._complete
            and self._keep_alive
            and transport is not None
            and not transport.is_closing()
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _check_deadline(self, timeout: float) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return
        loop = answer.get_loop()
        since = loop.time() - self._last_read
        if since < timeout:  # something was read meanwhile: wait from then
            self._deadline = loop.call_later(timeout - since, self._check_deadline, timeout)
            return
        answer.set_exception(TimeoutError("no answer within the read timeout"))
        self.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self._answer is not None:
            self._last_read = self._answer.get_loop().time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(_ProtocolError(f"not an HTTP/1.1 answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._until_closed and exc is None and not self._complete:
            self._keep_alive = False
            self.on_message_complete()
            return
        self._fail(_ProtocolError(f"the connection closed before a whole answer ({exc})"))

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        names = {name.lower() for name, _ in self._headers}
        # neither a length nor chunks: the body ends with the connection (HTTP/1.0 style)
        self._until_closed = not names & {"content-length", "transfer-encoding"}

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._complete = True
        answer = self._answer
        if answer is None or answer.done():
            return
        status = self._parser.get_status_code()
        try:
            body = _decoded(b"".join(self._body), self._headers)
        except zlib.error as exc:
            answer.set_exception(_ProtocolError(f"the answer's body does not decode: {exc}"))
            return
        answer.set_result(_Answer(status, self._headers, body))

    def _fail(self, error: Exception) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(error)


def _decoded(body: bytes, headers: list[tuple[str, str]]) -> bytes:
    """`body` without its Content-Encoding (gzip or deflate, the two asked for)."""
    for name, value in headers:
        if name.lower() == "content-encoding":
            for coding in reversed([c.strip().lower() for c in value.split(",")]):
                if coding in ("gzip", "x-gzip"):
                    body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
                elif coding == "deflate":
                    try:
                        body = zlib.decompress(body)
                    except zlib.error:  # raw deflate, as some servers send it
                        body = zlib.decompress(body, -zlib.MAX_WBITS)
    return body


def _request_head(url: httpx2.URL, headers: dict[str, str], retries_taken: int) -> bytes:
    """The request line and headers up to `Content-Length: ` (its value is per call)."""
    # the netloc: host (IPv6 in brackets), and the port unless it is the scheme's default
    target, host = url.raw_path.decode("ascii"), url.netloc.decode("ascii")
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if name.lower() == "x-stainless-retry-count":
            value = str(retries_taken)
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} has a line break")
        lines.append(f"{name}: {value}")
    lines += ["Accept-Encoding: gzip, deflate", "Content-Length: "]
    return "\r\n".join(lines).encode("latin-1")


class _SdkPost:
    """The SDK's own `post()` and client (through a proxy)."""

    def __init__(self, sdk: AsyncOpenAI) -> None:
        self._sdk = sdk

    async def post(self, body: bytes) -> bytes:
        return await self._sdk.post("/" + PATH, content=body, cast_to=bytes)

    async def close(self) -> None:
        await self._sdk.close()


def _head(sdk: AsyncOpenAI, timeout_seconds: float) -> dict[str, str]:
    """The headers the SDK sends with a POST of `content` (its auth, its defaults, and the
    two it adds per request); the request head adds Host, Accept-Encoding, Content-Length."""
    headers: dict[str, str] = {}
    for name, value in {**sdk.auth_headers, **sdk.default_headers}.items():
        if not isinstance(value, Omit):
            headers[name] = value
    headers["x-stainless-retry-count"] = "0"
    headers["x-stainless-read-timeout"] = str(httpx2.Timeout(timeout_seconds).read)
    return headers


def _proxied(url: str) -> bool:
    """Whether a proxy from the environment applies to `url` (httpx2's rules: the scheme's
    or `all`'s proxy, unless `no_proxy` names the host)."""
    proxies = urllib.request.getproxies_environment()
    parsed = httpx2.URL(url)
    if not (proxies.get(parsed.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parsed.host)


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    """Whether the SDK retries an answer of `status` (408, 409, 429, 5xx), or what the
    server says (`x-should-retry`), never after a `retry-after` longer than 2 minutes."""
    after = _retry_after(headers)
    if after is not None and math.isfinite(after) and after > MAX_RETRY_AFTER:
        return False
    said = headers.get("x-should-retry")
    if said in ("true", "false"):
        return said == "true"
    return status in (408, 409, 429) or status >= 500


def retry_delay(retries_taken: int, headers: Mapping[str, str] | None) -> float:
    """Seconds before the next attempt: what the server asks (0 to 2 minutes), else 0.5 s
    doubling per retry up to 8 s, less a random 0-25%."""
    after = _retry_after(headers) if headers is not None else None
    if after is not None and math.isfinite(after) and 0 < after <= MAX_RETRY_AFTER:
        return after
    delay = min(INITIAL_RETRY_DELAY * 2.0**retries_taken, MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, else `retry-after` in seconds or as an HTTP date, in seconds."""
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value)
        except ValueError:
            continue
        if delay == math.inf and value.strip().lower() not in _INFINITY:
            return MAX_RETRY_AFTER + 1  # an overflowing number: too long, not malformed
        return delay / divisor
    try:
        when = email.utils.parsedate_tz(headers.get("retry-after"))
        if when is None:
            return None
        return float(email.utils.mktime_tz(when) - time.time())
    except (TypeError, ValueError, OverflowError, OSError):
        return None
