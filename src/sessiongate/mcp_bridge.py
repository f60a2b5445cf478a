"""The stdio side of MCP: an SDK server on stdin/stdout that forwards to a gateway's /mcp.

Every request is passed, as it is, to the gateway's streamable-HTTP endpoint
with the SDK's own client, so the tools, their rules and their errors are
exactly the gateway's (entry point ``mcp``). `sessiongate mcp` runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.client import ConnectMode
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from sessiongate.errors import GatewayUnreachableError
from sessiongate.mcp_wire import SESSION_HEADER, sdk_server, tool_error

__all__ = ["bridge_stdio", "forwarding_server", "gateway_client"]

T = TypeVar("T")
Context = ServerRequestContext[Any, Any]

# A sessions_send may wait up to 600 s for its reply; the read timeout outlasts it.
UPSTREAM_TIMEOUT = httpx2.Timeout(30.0, read=660.0)


def _cursor(params: types.PaginatedRequestParams | None) -> str | None:
    return params.cursor if params is not None else None


def _unreachable(url: str, exc: Exception) -> GatewayUnreachableError:
    return GatewayUnreachableError(
        f"the gateway at {url} did not answer: {exc!r:.300}",
        details={"url": url, "hint": "is `sessiongate serve` running there?"},
    )


class _Forwarder:
    """Each MCP request, passed to the gateway's /mcp as it is."""

    def __init__(self, upstream: Client, url: str) -> None:
        self.upstream = upstream
        self.url = url

    async def _forward(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except MCPError:
            raise
        except Exception as exc:  # the gateway went away mid-session
            error = _unreachable(self.url, exc)
            message = f"{error.code}: {error.message}"
            raise MCPError(types.INTERNAL_ERROR, message, error.to_wire()) from None

    async def list_tools(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await self._forward(self.upstream.list_tools(cursor=_cursor(params)))

    async def call_tool(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            return await self.upstream.call_tool(params.name, params.arguments)
        except MCPError:
            raise
        except Exception as exc:  # a tool call's failure stays a tool error the model can read
            return tool_error(_unreachable(self.url, exc))

    async def list_resources(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return await self._forward(self.upstream.list_resources(cursor=_cursor(params)))

    async def list_templates(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return await self._forward(self.upstream.list_resource_templates(cursor=_cursor(params)))

    async def read_resource(
        self, ctx: Context, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await self._forward(self.upstream.read_resource(str(params.uri)))


def forwarding_server(upstream: Client, url: str) -> Server[Any]:
    """An SDK server that answers each request by asking `upstream` (the gateway's /mcp)."""
    return sdk_server(_Forwarder(upstream, url), upstream.instructions)


@contextlib.asynccontextmanager
async def gateway_client(
    url: str, token: str | None, session_key: str | None = None, *, mode: ConnectMode = "auto"
) -> AsyncIterator[Client]:
    """The SDK's client, connected to the gateway's /mcp as `session_key` (if given).

    `mode` is the SDK's: ``"auto"`` (the 2026-07-28 protocol when the server has
    it) or ``"legacy"`` (the initialize handshake).
    """
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if session_key:
        headers[SESSION_HEADER] = session_key
    endpoint = url.rstrip("/") + "/mcp"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=UPSTREAM_TIMEOUT) as http,
        Client(streamable_http_client(endpoint, http_client=http), mode=mode, cache=None) as client,
    ):
        # The SDK checks each tool result against the tool's listing and lists the
        # tools again for every call of a tool it has not seen listed: list once.
        await client.list_tools()
        yield client


async def bridge_stdio(url: str, token: str | None, session_key: str | None) -> None:
    """Serve MCP on stdin/stdout until stdin closes, forwarding to the gateway at `url`."""
    async with gateway_client(url, token, session_key) as upstream:
        server = forwarding_server(upstream, url)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
