"""The LLM runtime's model call: one chat completion, POSTed over aiohttp with the `openai`
SDK's head, retries and error classes.

The SDK's `post()` was ~38% of the gateway's CPU for an LLM turn even over aiohttp: per
request it copies its options, merges the URL, builds and validates the headers, makes an
httpx2 `Request` and `Response` and goes through httpx2's client wrappers. Here the head
(URL, headers) is made once, from the SDK's client (its auth and default headers, so what
goes on the wire is what the SDK sends), and each call is one aiohttp request.

What the SDK did per call is kept, and owned here:
- retries: 2, after 0.5 s then 1 s (doubling, at most 8 s), each less a random 0-25%, or
  after what the answer's `retry-after-ms` / `retry-after` says (up to 2 minutes; a longer
  one is not retried); on 408, 409, 429, 5xx (unless `x-should-retry: false`; any status
  with `x-should-retry: true`), on a timeout and on a connection error;
  `x-stainless-retry-count` counts them;
- errors, as the SDK raises them: a status that is not 2xx is the SDK's own status error
  (`openai.RateLimitError`, `NotFoundError`, …, made by the SDK's client from the answer);
  a timeout `openai.APITimeoutError`; a connection that fails `openai.APIConnectionError`;
- timeouts per phase (connect, read, pool) as the SDK's client applies them; redirects
  followed; connections kept alive (1,000 at most, idle ones kept 5 s); TLS verified with
  the SDK's context (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured).

Where a proxy from the environment (`HTTPS_PROXY`, `ALL_PROXY`, … not bypassed by
`NO_PROXY`) applies to the endpoint, the call is the SDK's own `post()` with its default
client, proxy included.

Imported at an LLM agent's first turn (aiohttp and the SDK are the `llm` extra).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
import urllib.request
from collections.abc import Mapping
from typing import Protocol

import aiohttp
import httpx2
import openai
from multidict import CIMultiDict, CIMultiDictProxy
from openai import AsyncOpenAI, Omit
from yarl import URL

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
    try:
        await asyncio.to_thread(sdk.platform_headers)
    except BaseException:
        await sdk.close()
        raise
    return DirectClient(sdk, timeout_seconds)


class DirectClient:
    """One chat completion per call over aiohttp, with a head made once."""

    def __init__(self, sdk: AsyncOpenAI, timeout_seconds: float) -> None:
        self._sdk = sdk  # its headers, and its status errors
        self._url = URL(str(sdk.base_url) + PATH, encoded=True)
        self._headers = _head(sdk, timeout_seconds)
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=timeout_seconds, sock_read=timeout_seconds, connect=timeout_seconds
        )
        self._session: aiohttp.ClientSession | None = None

    async def post(self, body: bytes) -> bytes:
        for retries_taken in range(MAX_RETRIES + 1):
            left = MAX_RETRIES - retries_taken
            try:
                status, headers, answer = await self._send(body, retries_taken)
            except TimeoutError as exc:
                if left:
                    await asyncio.sleep(retry_delay(retries_taken, None))
                    continue
                raise openai.APITimeoutError(request=self._request(body)) from exc
            except aiohttp.ClientError as exc:
                if left:
                    await asyncio.sleep(retry_delay(retries_taken, None))
                    continue
                raise openai.APIConnectionError(request=self._request(body)) from exc
            if 200 <= status < 300:
                return answer
            if left and should_retry(status, headers):
                await asyncio.sleep(retry_delay(retries_taken, headers))
                continue
            raise self._status_error(status, headers, answer, body) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def close(self) -> None:
        try:
            await self._sdk.close()
        finally:
            if self._session is not None:
                await self._session.close()

    async def _send(
        self, body: bytes, retries_taken: int
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        session = self._session or self._open()
        headers = self._headers
        if retries_taken:
            headers = headers.copy()
            headers["x-stainless-retry-count"] = str(retries_taken)
        async with session.post(
            self._url, data=body, headers=headers, timeout=self._timeout
        ) as response:
            return response.status, response.headers, await response.read()

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=MAX_CONNECTIONS,
            keepalive_timeout=KEEPALIVE_SECONDS,
            ssl=httpx2.create_ssl_context(trust_env=True),
        )
        self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _request(self, body: bytes) -> httpx2.Request:
        """The request as the SDK's errors carry it (made only for an error)."""
        return httpx2.Request("POST", str(self._url), headers=dict(self._headers), content=body)

    def _status_error(
        self, status: int, headers: Mapping[str, str], answer: bytes, body: bytes
    ) -> openai.APIStatusError:
        # the body is already decoded: no content-encoding for httpx2 to decode again
        kept = [(k, v) for k, v in headers.items() if k.lower() != "content-encoding"]
        request = self._request(body)
        response = httpx2.Response(status, headers=kept, content=answer, request=request)
        return self._sdk._make_status_error_from_response(response)


class _SdkPost:
    """The SDK's own `post()` and client (through a proxy)."""

    def __init__(self, sdk: AsyncOpenAI) -> None:
        self._sdk = sdk

    async def post(self, body: bytes) -> bytes:
        return await self._sdk.post("/" + PATH, content=body, cast_to=bytes)

    async def close(self) -> None:
        await self._sdk.close()


def _head(sdk: AsyncOpenAI, timeout_seconds: float) -> CIMultiDict[str]:
    """The headers the SDK sends with a POST of `content` (its auth, its defaults, and the
    two it adds per request); aiohttp adds Host, Content-Length and Accept-Encoding."""
    headers: CIMultiDict[str] = CIMultiDict()
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
    parsed = URL(url)
    if not (proxies.get(parsed.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parsed.host or "")


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
