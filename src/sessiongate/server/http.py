"""HTTP surface: /tools/invoke, /v1/sessions…, health and metrics.

Each route parses its request once into the shared argument models, calls one of
the `Gateway`'s typed operations and answers its outcome; what a route raises is
answered by the surface's one catch-all (`sessiongate.server.access_log`).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError, create_model
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sessiongate import __version__
from sessiongate.errors import SessionGateError, StoreUnavailableError
from sessiongate.gateway import Gateway
from sessiongate.policy import effective_policies
from sessiongate.resolver import Caller
from sessiongate.run_records import describe_store
from sessiongate.server.access_log import session_gate_error_response, speak_errors
from sessiongate.server.failed_auth import FailedAuthLimiter, client_address
from sessiongate.server.openclaw_http import (
    clamp_list_limit,
    dry_run,
    dry_run_result,
    openclaw_envelope,
    openclaw_error,
    refuse_action,
)
from sessiongate.server.requests import read_body
from sessiongate.server.wire_response import WireResponse
from sessiongate.tools import TOOLS, get_tool
from sessiongate.tools.args import (
    DeleteArgs,
    HistoryArgs,
    ListArgs,
    PatchArgs,
    PruneArgs,
    ResetArgs,
    SessionArgs,
    StatusArgs,
)
from sessiongate.tools.base import ToolArgs, validate_args
from sessiongate.wire import check_text, decode_json, query_int

__all__ = [
    "authenticate",
    "bearer_token",
    "check_bearer",
    "http_routes",
    "invoke_tool",
    "ok",
    "session_gate_error_response",
]

log = structlog.get_logger("sessiongate.http")

A = TypeVar("A", bound=ToolArgs)

READY_DEADLINE_SECONDS = 2.0


def ok(result: Any) -> JSONResponse:
    """The success wire form."""
    return WireResponse({"ok": True, "result": result})


def _gateway(request: Request) -> Gateway:
    authenticate(request)
    gateway: Gateway = request.app.state.gateway
    return gateway


def authenticate(request: Request, surface: str = "http") -> None:
    """The bearer token must be the gateway's, within its request rate (every HTTP surface);
    wrong tokens are paced per client address (`FailedAuthLimiter`)."""
    check_bearer(request.app.state, request.headers.get("authorization"), request.client, surface)


def check_bearer(state: State, authorization: str | None, client: Any, surface: str) -> None:
    """`authenticate` from what it reads of a request: the app's state, the Authorization
    header and the ASGI scope's ``client`` (the hot routes have no `Request`)."""
    token = _bearer(authorization or "")
    failed_auth: FailedAuthLimiter = state.failed_auth
    failed_auth.check(client_address(client), surface, state.token, token)
    state.connection_guard.authenticated(client)
    state.rate_limiter.charge(token)


def _paced_check(request: Request, surface: str, presented: str | None) -> None:
    limiter: FailedAuthLimiter = request.app.state.failed_auth
    limiter.check(client_address(request.client), surface, request.app.state.token, presented)


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    return _bearer(request.headers.get("authorization", ""))


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class InvokeBody(ToolArgs):
    tool: str
    args: dict[str, Any] = {}
    session_key: str | None = None
    action: str | None = None  # OpenClaw's request fields
    dry_run: bool = False


async def tools_invoke(request: Request) -> Response:
    if request.app.state.gateway.config.gateway.compat.openclaw:
        speak_errors(request.scope, openclaw_error)
        return openclaw_envelope(await _invoke_tool(request))
    return ok(await _invoke_tool(request))


async def _invoke_tool(request: Request) -> dict[str, Any]:
    gateway = _gateway(request)
    return await invoke_tool(gateway, decode_json(await read_body(request)))


async def invoke_tool(gateway: Gateway, raw: Any) -> dict[str, Any]:
    """A `/tools/invoke` body (parsed JSON) run: its envelope and the tool's arguments
    validated once, by the tool's own envelope model (`_typed_envelope`)."""
    body, parsed = _parse_invocation(raw)
    caller = await gateway.caller_for(body.session_key, "http")
    if body.action is not None:
        raise refuse_action(body.tool, body.action)
    if parsed is not None:
        if body.dry_run:
            get_tool(body.tool, gateway.config.gateway.tools.allow)
            return dry_run_result(body.tool, parsed)
        return await gateway.run_tool(body.tool, parsed, caller)
    args = body.args
    if gateway.config.gateway.compat.openclaw:
        args = clamp_list_limit(body.tool, args)
    if body.dry_run:
        return dry_run(body.tool, args, gateway.config.gateway.tools.allow)
    return await gateway.invoke(body.tool, args, caller)


def _parse_invocation(raw: Any) -> tuple[InvokeBody, ToolArgs | None]:
    """The envelope, with the tool's arguments already validated when they could be.

    A known tool's body is validated by its typed envelope, arguments included: one
    validation. Anything it refuses (an unknown tool, missing or bad arguments, a bad
    envelope) goes the way it always went — the envelope alone, then the tool's
    arguments at the call — so each refusal keeps its code, wording and precedence.
    """
    tool = raw.get("tool") if isinstance(raw, dict) else None
    if type(tool) is str and tool in TOOLS:
        try:
            typed = _typed_envelope(tool).model_validate(raw)
        except ValidationError:
            pass
        else:
            args: object = typed.args
            if isinstance(args, ToolArgs):
                return typed, args
    return validate_args(InvokeBody, raw, "/tools/invoke"), None


@functools.cache
def _typed_envelope(tool: str) -> type[InvokeBody]:
    """`InvokeBody` whose ``args`` is the tool's argument model (required), built once."""
    model: type[InvokeBody] = create_model(
        f"InvokeBody_{tool}", __base__=InvokeBody, args=(TOOLS[tool].args_model, ...)
    )
    return model


def _query_args(request: Request) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, value in request.query_params.items():
        check_text(name, "query")
        check_text(value, "query")
        args[name] = query_int(value) if name in ("limit", "before") else value
        if name == "followAlias" and value in ("true", "false"):
            args[name] = value == "true"
    return args


def _path_key(request: Request) -> str:
    key: str = request.path_params["key"]
    check_text(key, "path")
    return key


async def _header_caller(request: Request, gateway: Gateway) -> Caller:
    """The caller named by the optional X-Session-Key header (its own session)."""
    own = request.headers.get("x-session-key")
    if own is not None:
        check_text(own, "x-session-key")
    return await gateway.caller_for(own, "http")


async def list_sessions(request: Request) -> Response:
    gateway = _gateway(request)
    args = validate_args(ListArgs, _query_args(request), "GET /v1/sessions")
    caller = await _header_caller(request, gateway)
    return ok((await gateway.list_sessions(args, caller)).to_wire())


async def show_session(request: Request) -> Response:
    gateway = _gateway(request)
    follow = request.query_params.get("followAlias", "true") != "false"
    args = SessionArgs.model_construct(session_key=_path_key(request), follow_alias=follow)
    caller = await _header_caller(request, gateway)
    return ok((await gateway.show(args, caller)).to_wire())


async def session_messages(request: Request) -> Response:
    gateway = _gateway(request)
    raw = {**_query_args(request), "sessionKey": _path_key(request)}
    args = validate_args(HistoryArgs, raw, "GET /v1/sessions/{key}/messages")
    caller = await _header_caller(request, gateway)
    return ok((await gateway.history(args, caller)).to_wire())


async def _optional_body(request: Request) -> Any:
    raw = await read_body(request)
    return decode_json(raw) if raw.strip() else {}


async def _session_operation(
    request: Request, model: type[A], what: str
) -> tuple[Gateway, A, Caller]:
    """A lifecycle route: the key from the path, the rest from an optional JSON body,
    the caller from X-Session-Key (none: an operator)."""
    gateway = _gateway(request)
    body = await _optional_body(request)
    raw = {**body, "sessionKey": _path_key(request)} if isinstance(body, dict) else body
    args = validate_args(model, raw, what)
    return gateway, args, await _header_caller(request, gateway)


class _Wired(Protocol):
    def to_wire(self) -> dict[str, Any]: ...


_Operation = Callable[[Gateway], Callable[[A, Caller], Awaitable[_Wired]]]


def _lifecycle_route(
    model: type[A], what: str, operation: _Operation[A]
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of one lifecycle operation (`_session_operation` parses its request)."""

    async def endpoint(request: Request) -> Response:
        gateway, args, caller = await _session_operation(request, model, what)
        return ok((await operation(gateway)(args, caller)).to_wire())

    return endpoint


delete_session = _lifecycle_route(DeleteArgs, "DELETE /v1/sessions/{key}", lambda g: g.delete)
reset_session = _lifecycle_route(ResetArgs, "POST /v1/sessions/{key}/reset", lambda g: g.reset)
archive_session = _lifecycle_route(
    StatusArgs, "POST /v1/sessions/{key}/archive", lambda g: g.archive
)
unarchive_session = _lifecycle_route(
    StatusArgs, "POST /v1/sessions/{key}/unarchive", lambda g: g.unarchive
)
patch_session = _lifecycle_route(PatchArgs, "PATCH /v1/sessions/{key}", lambda g: g.patch)


async def prune_sessions(request: Request) -> Response:
    gateway = _gateway(request)
    args = validate_args(PruneArgs, await _optional_body(request), "POST /v1/retention/prune")
    caller = await _header_caller(request, gateway)
    return ok((await gateway.prune(args, caller)).to_wire())


async def channel_inbound(request: Request) -> Response:
    gateway = _gateway(request)
    channel: str = request.path_params["channel"]
    check_text(channel, "path")
    body = decode_json(await read_body(request))
    return ok(await gateway.receive_inbound(channel, body))


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "status": "alive"})


async def readyz(request: Request) -> Response:
    """Ready while the store answers and can write, within a short deadline.

    An unauthenticated caller learns ready / not-ready and nothing more; a caller
    with the token also gets the store's error, or the session count (a full
    count is not cheap, so anonymous probes never pay for it).
    """
    gateway: Gateway = request.app.state.gateway
    operator = _authorized(request)
    try:
        async with asyncio.timeout(READY_DEADLINE_SECONDS):
            await gateway.check_ready()
            detail = {"sessions": await gateway.count_sessions()} if operator else {}
    except (StoreUnavailableError, TimeoutError) as exc:
        body: dict[str, Any] = {"ok": False, "status": "not-ready"}
        if isinstance(exc, StoreUnavailableError) and operator:
            body["error"] = exc.to_wire()["error"]
        return JSONResponse(body, status_code=503)
    return JSONResponse({"ok": True, "status": "ready", **detail})


def _authorized(request: Request) -> bool:
    """Whether the request carries the token (paced like every check: /readyz is no oracle)."""
    try:
        _paced_check(request, "readyz", bearer_token(request))
    except SessionGateError:
        return False
    return True


async def status(request: Request) -> Response:
    gateway = _gateway(request)
    config = gateway.config
    policies = effective_policies(config)
    return ok(
        {
            "version": __version__,
            "pid": os.getpid(),
            "store": describe_store(config.storage_url),
            "sessions": await gateway.count_sessions(),
            # the value for each agent's main key; createOnMissPolicy says what decides the rest
            "createOnMiss": {p.agent_id: p.main.mode.config_value for p in policies},
            "createOnMissPolicy": {p.agent_id: p.to_wire() for p in policies},
            "createOnMissRules": [r.match for r in config.gateway.sessions.rules],
        }
    )


def _metrics_allowed(request: Request, gateway: Gateway) -> None:
    """metrics.token if configured; else loopback scrapers need no token; else the API token."""
    presented = bearer_token(request)
    scrape_token = gateway.config.metrics.token
    if scrape_token is not None:
        if presented and hmac.compare_digest(presented.encode(), scrape_token.encode()):
            return
    elif request.client is not None and _is_loopback(request.client.host):
        return
    _paced_check(request, "metrics", presented)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    _metrics_allowed(request, gateway)
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def http_routes() -> list[Route]:
    """Every HTTP route; each one that addresses a session goes through the resolver."""
    return [
        Route("/tools/invoke", tools_invoke, methods=["POST"]),
        Route("/v1/sessions", list_sessions, methods=["GET"]),
        Route("/v1/sessions/{key:path}/messages", session_messages, methods=["GET"]),
        Route("/v1/sessions/{key:path}/reset", reset_session, methods=["POST"]),
        Route("/v1/sessions/{key:path}/archive", archive_session, methods=["POST"]),
        Route("/v1/sessions/{key:path}/unarchive", unarchive_session, methods=["POST"]),
        Route("/v1/sessions/{key:path}", show_session, methods=["GET"]),
        Route("/v1/sessions/{key:path}", delete_session, methods=["DELETE"]),
        Route("/v1/sessions/{key:path}", patch_session, methods=["PATCH"]),
        Route("/v1/retention/prune", prune_sessions, methods=["POST"]),
        Route("/v1/channels/{channel}/inbound", channel_inbound, methods=["POST"]),
        Route("/v1/status", status, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
