"""MCP surface: the sessions tools and transcripts for any MCP client, at ``/mcp``.

Built on the official SDK (`mcp`): its low-level `Server` answers the protocol,
its `StreamableHTTPSessionManager` the transport. The manager runs stateless
with JSON responses, so every POST is one self-contained call: any gateway
process behind a balancer can answer it, and a gateway restart does not break
a connected client.

- Tools: the four ``sessions_*`` tools from `sessiongate.tools` (same argument
  models, same descriptions). A result is ``structuredContent`` plus its
  compact JSON as text; a refusal is a tool error (``isError: true``) whose
  structured content is the error's one wire form, so a model can read the
  suggestions and retry.
- Resources: each visible session's transcript at ``sessiongate://sessions/{key}``.
- Caller: the ``X-Session-Key`` header names the caller's own session (as on
  the HTTP GET routes); without it the caller is the operator. Provenance
  records the entry point ``mcp``.

Tool calls go through `Gateway.invoke` (the tool's model validates the arguments
once); resources through the typed `list_sessions` and `history`. `_Handlers.edge` is
the surface's one catch-all.
"""

from __future__ import annotations

import contextlib
import functools
import urllib.parse
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from sessiongate.catchall import internal_error
from sessiongate.errors import InvalidRequestError, SessionGateError
from sessiongate.gateway import Gateway
from sessiongate.mcp_wire import (
    SESSION_HEADER,
    compact_json,
    sdk_server,
    tool_error,
    tool_result,
)
from sessiongate.outcomes import SessionListing
from sessiongate.request_ids import begin_request
from sessiongate.resolver import Caller
from sessiongate.server.http import authenticate
from sessiongate.store.base import SessionRecord
from sessiongate.tools import TOOLS
from sessiongate.tools.args import HistoryArgs, ListArgs

__all__ = [
    "ENTRY_POINT",
    "RESOURCE_TEMPLATE",
    "SESSION_HEADER",
    "McpEndpoint",
    "build_mcp_server",
    "tool_error",
    "transcript_uri",
]

ENTRY_POINT = "mcp"
RESOURCE_PREFIX = "sessiongate://sessions/"
RESOURCE_TEMPLATE = RESOURCE_PREFIX + "{key}"
RESOURCE_PAGE = 100
TRANSCRIPT_MESSAGES = 1000  # the newest messages of a transcript resource (sessions_history's max)
INSTRUCTIONS = (
    "sessiongate routes messages between agents by session key. A key that does not exist may "
    "be refused with SESSION_NOT_FOUND: read error.details.suggestions and retry with one."
)


@functools.cache
def _input_schema(name: str) -> dict[str, Any] | None:
    """A tool's argument schema (built once: pydantic takes milliseconds to build one)."""
    spec = TOOLS.get(name)
    return spec.json_schema() if spec is not None else None


def _no_param_headers(name: str) -> None:
    """No tool maps an argument to an ``Mcp-Param-*`` header: nothing for the SDK to check.

    (Without this hook the SDK would list the tools on every 2026-07-28 call to find out.)
    """
    return None


def tool_definitions(allowed: list[str] | None) -> list[types.Tool]:
    """The tools this gateway offers, from the one registry (argument schemas included)."""
    return [
        types.Tool(name=name, description=spec.description, input_schema=spec_schema)
        for name, spec in TOOLS.items()
        if (spec_schema := _input_schema(name)) is not None
        if allowed is None or name in allowed
    ]


def transcript_uri(key: str) -> str:
    """The resource URI of a session's transcript."""
    return RESOURCE_PREFIX + urllib.parse.quote(key, safe=":")


def _key_of(uri: str) -> str:
    if not uri.startswith(RESOURCE_PREFIX) or uri == RESOURCE_PREFIX:
        raise InvalidRequestError(
            f"unknown resource {uri[:200]!r}: transcripts are {RESOURCE_TEMPLATE}",
            details={"uri": uri[:200], "uriTemplate": RESOURCE_TEMPLATE},
        )
    return urllib.parse.unquote(uri.removeprefix(RESOURCE_PREFIX))


def _protocol_error(error: SessionGateError) -> MCPError:
    """A failed resource request: JSON-RPC error whose data is the wire form."""
    code = types.INVALID_PARAMS if error.http_status < 500 else types.INTERNAL_ERROR
    return MCPError(code, f"{error.code}: {error.message}", error.to_wire())


Context = ServerRequestContext[Any, Any]
T = TypeVar("T")


class _Handlers:
    """The MCP requests, each a thin translation onto the gateway's operations."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def _caller(self, ctx: Context) -> Caller:
        request = ctx.request
        key = request.headers.get(SESSION_HEADER) if isinstance(request, Request) else None
        return await self.gateway.caller_for(key or None, ENTRY_POINT)

    @staticmethod
    async def edge(where: str, work: Awaitable[T]) -> T | SessionGateError:
        """The MCP surface's one catch-all: the result, or the error to answer with
        (anything untyped becomes ``INTERNAL_ERROR``, logged with its request id)."""
        begin_request()
        try:
            return await work
        except SessionGateError as exc:
            return exc
        except Exception as exc:
            return internal_error(exc, ENTRY_POINT, where)

    async def list_tools(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=tool_definitions(self.gateway.config.gateway.tools.allow)
        )

    async def call_tool(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        answer = await self.edge(f"tools/call {params.name}", self._call(ctx, params))
        if isinstance(answer, SessionGateError):
            return tool_error(answer)
        return tool_result(answer)

    async def _call(self, ctx: Context, params: types.CallToolRequestParams) -> dict[str, Any]:
        caller = await self._caller(ctx)
        return await self.gateway.invoke(params.name, dict(params.arguments or {}), caller)

    async def list_resources(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        cursor = params.cursor if params is not None and params.cursor else None
        args = ListArgs.model_construct(limit=RESOURCE_PAGE, cursor=cursor)
        listing = _resource(await self.edge("resources/list", self._list(ctx, args)))
        resources = [_transcript_resource(session) for session in listing.sessions]
        return types.ListResourcesResult(resources=resources, next_cursor=listing.next_cursor)

    async def _list(self, ctx: Context, args: ListArgs) -> SessionListing:
        return await self.gateway.list_sessions(args, await self._caller(ctx))

    async def list_templates(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            name="transcript",
            uri_template=RESOURCE_TEMPLATE,
            description="A session's transcript (newest messages), by session key.",
            mime_type="application/json",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def read_resource(
        self, ctx: Context, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        history = _resource(await self.edge("resources/read", self._read(ctx, uri)))
        contents = types.TextResourceContents(
            uri=uri, mime_type="application/json", text=compact_json(history)
        )
        return types.ReadResourceResult(contents=[contents])

    async def _read(self, ctx: Context, uri: str) -> dict[str, Any]:
        args = HistoryArgs.model_construct(session_key=_key_of(uri), limit=TRANSCRIPT_MESSAGES)
        return (await self.gateway.history(args, await self._caller(ctx))).to_wire()


def _resource(answer: T | SessionGateError) -> T:
    """A resource request's result; a refusal is a JSON-RPC error carrying the wire form."""
    if isinstance(answer, SessionGateError):
        raise _protocol_error(answer)
    return answer


def _transcript_resource(session: SessionRecord) -> types.Resource:
    label = f" ({session.label})" if session.label else ""
    return types.Resource(
        name=session.key,
        uri=transcript_uri(session.key),
        description=f"Transcript of {session.key}{label}: {session.last_seq} messages",
        mime_type="application/json",
    )


def build_mcp_server(gateway: Gateway) -> Server[Any]:
    """The SDK server whose every handler goes through `gateway`."""
    handlers = _Handlers(gateway)
    return sdk_server(handlers, INSTRUCTIONS, get_tool_input_schema=_no_param_headers)


def _check_json_body(request: Request) -> None:
    """A POST must carry JSON: the SDK would answer anything else in plain text."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if request.method == "POST" and kind != "application/json":
        raise InvalidRequestError(
            f"/mcp takes a JSON-RPC body: content-type must be application/json, not {kind!r:.60}",
            details={"problems": ["content-type: expected application/json"]},
        )


class McpEndpoint:
    """The ASGI app at ``/mcp``: the gateway's bearer token, then the SDK's session manager.

    `serving(gateway)` runs the manager for the app's lifetime (the app's lifespan enters it).
    """

    def __init__(self) -> None:
        self._manager: StreamableHTTPSessionManager | None = None

    @contextlib.asynccontextmanager
    async def serving(self, gateway: Gateway) -> AsyncIterator[None]:
        """Answer MCP requests with `gateway` until the block ends."""
        manager = StreamableHTTPSessionManager(
            build_mcp_server(gateway),
            stateless=True,
            json_response=True,
            max_request_body_size=gateway.config.gateway.max_body_bytes,
        )
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        authenticate(request, "mcp")  # a refusal is answered by the HTTP edge
        _check_json_body(request)
        if self._manager is None:
            raise RuntimeError("the MCP endpoint is not serving (outside the app's lifespan)")
        await self._manager.handle_request(scope, receive, send)
