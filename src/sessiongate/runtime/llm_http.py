"""The LLM runtime's HTTP client: the `openai` SDK's httpx2 client over aiohttp's transport.

httpx2's own transport (httpcore2 over anyio) spent ~35% of the gateway's CPU for an LLM
turn: a cancel scope and stream wrappers on every read and write, the head and the body
in two writes. aiohttp is asyncio's own client (its parser in C, one write per request).
The SDK still builds the request, applies its timeouts and retries and maps errors;
only the bytes on the socket go through aiohttp. A proxy from the environment
(`HTTPS_PROXY`, …) is still honoured by httpx2's proxy transport, as before.

The SDK ships an aiohttp adapter of its own (`openai.DefaultAioHttpClient`), but it maps
every connection error to a timeout (a refused connection would read "Request timed
out."); this one maps each failure to the httpx2 error the default transport raises, so
the SDK's retries and its APIConnectionError / APITimeoutError stay as they were.

Imported with the runtime's client, at an LLM agent's first turn (aiohttp is part of the
`llm` extra).
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import httpx2

__all__ = ["model_http_client"]

# As the SDK's default client: 1,000 connections, idle ones kept for 5 s.
_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)


def model_http_client(timeout_seconds: float) -> httpx2.AsyncClient:
    """An httpx2 client for the SDK (`AsyncOpenAI(http_client=…)`), with the SDK's defaults."""
    return _AiohttpClient(timeout=timeout_seconds, limits=_LIMITS, follow_redirects=True)


class _AiohttpClient(httpx2.AsyncClient):
    """httpx2's client with aiohttp as its transport for direct connections."""

    def _init_transport(  # type: ignore[override]  # httpx2's keywords, passed through
        self, verify: ssl.SSLContext | str | bool = True, **kwargs: Any
    ) -> httpx2.AsyncBaseTransport:
        limits = kwargs.get("limits", _LIMITS)
        cert, trust_env = kwargs.get("cert"), kwargs.get("trust_env", True)
        context = httpx2.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        return AiohttpTransport(context, limits)


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """One request over aiohttp, its response read whole (the runtime never streams)."""

    def __init__(self, context: ssl.SSLContext, limits: httpx2.Limits) -> None:
        self._context = context
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None  # made on the event loop

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self._session or self._open()
        timeout = request.extensions.get("timeout", {})
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=request.headers,
                data=request.content or None,
                allow_redirects=False,  # httpx2 follows them, as with its own transport
                auto_decompress=False,  # httpx2 decodes by Content-Encoding
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
            ) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx2_error(exc, request) from exc
        return httpx2.Response(
            response.status,
            headers=response.raw_headers,
            stream=httpx2.ByteStream(body),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": _reason(response)},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _open(self) -> aiohttp.ClientSession:
        limits = self._limits
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            keepalive_timeout=limits.keepalive_expiry or 0,
            ssl=self._context,
        )
        self._session = aiohttp.ClientSession(connector=connector)
        return self._session


def _reason(response: aiohttp.ClientResponse) -> bytes:
    return (response.reason or "").encode("ascii", "replace")


def _httpx2_error(
    exc: aiohttp.ClientError | TimeoutError, request: httpx2.Request
) -> httpx2.TransportError:
    """The httpx2 error that its own transport raises for the same failure (httpcore2's
    mapping): the SDK retries on each, and reports a timeout as APITimeoutError and the
    rest as APIConnectionError."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx2.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx2.ConnectTimeout
    elif isinstance(exc, TimeoutError):  # aiohttp.SocketTimeoutError: a read's deadline
        kind = httpx2.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):  # refused, unreachable, DNS, TLS
        kind = httpx2.ConnectError
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        kind = httpx2.RemoteProtocolError  # closed before an answer, or not HTTP
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx2.UnsupportedProtocol
    else:  # a connection reset while writing or reading, a truncated body
        kind = httpx2.ReadError
    return kind(message, request=request)
