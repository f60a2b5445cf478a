"""HTTP surface: /tools/invoke, /v1/sessions…, health and metrics."""

from __future__ import annotations

import json
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sessiongate.channels import receive_inbound
from sessiongate.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    SessionGateError,
    StoreUnavailableError,
)
from sessiongate.gateway import Gateway
from sessiongate.server.auth import check_token
from sessiongate.tools.base import ToolArgs, validate_args
from sessiongate.tools.sessions import HistoryArgs, ListArgs

__all__ = ["bearer_token", "http_routes", "ok", "session_gate_error_response"]

log = structlog.get_logger("sessiongate.http")


def ok(result: Any) -> JSONResponse:
    """The success wire form."""
    return JSONResponse({"ok": True, "result": result})


def session_gate_error_response(error: SessionGateError) -> JSONResponse:
    """An error in its one wire form, with its HTTP status."""
    return JSONResponse(error.to_wire(), status_code=error.http_status)


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    token = bearer_token(request)
    check_token(request.app.state.token, token)
    request.app.state.rate_limiter.charge(token)
    return gateway


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def _json_body(request: Request) -> Any:
    limit: int = request.app.state.gateway.config.gateway.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"body over {limit} bytes", details={"limit": limit})
    body = await _read_body(request, limit, declared)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"body is not valid JSON: {exc}", details={"hint": "send a JSON object"}
        ) from None


async def _read_body(request: Request, limit: int, declared: str | None) -> bytes:
    if declared and declared.isdigit():  # the server stops reading at the declared length
        return await request.body()
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLargeError(f"body over {limit} bytes", details={"limit": limit})
    return bytes(body)


class InvokeBody(ToolArgs):
    tool: str
    args: dict[str, Any] = {}
    session_key: str | None = None


async def tools_invoke(request: Request) -> Response:
    gateway = _gateway(request)
    body = validate_args(InvokeBody, await _json_body(request), "/tools/invoke")
    caller = await gateway.caller_for(body.session_key, "http")
    allowed = gateway.config.gateway.tools.allow
    return ok(await gateway.invoke(body.tool, body.args, caller, allowed))


def _query_args(request: Request) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, value in request.query_params.items():
        args[name] = int(value) if value.isdigit() and name in ("limit", "before") else value
    return args


async def list_sessions(request: Request) -> Response:
    gateway = _gateway(request)
    args = validate_args(ListArgs, _query_args(request), "GET /v1/sessions")
    caller = await gateway.caller_for(request.headers.get("x-session-key"), "http")
    return ok(await gateway.invoke("sessions_list", args.model_dump(by_alias=True), caller))


async def show_session(request: Request) -> Response:
    gateway = _gateway(request)
    caller = await gateway.caller_for(request.headers.get("x-session-key"), "http")
    resolution = await gateway.show_session(request.path_params["key"], caller)
    return ok({**resolution.session.to_wire(), "requestedKey": resolution.requested_key})


async def session_messages(request: Request) -> Response:
    gateway = _gateway(request)
    raw = {**_query_args(request), "sessionKey": request.path_params["key"]}
    args = validate_args(HistoryArgs, raw, "GET /v1/sessions/{key}/messages")
    caller = await gateway.caller_for(request.headers.get("x-session-key"), "http")
    wire = args.model_dump(by_alias=True, exclude_none=True)
    return ok(await gateway.invoke("sessions_history", wire, caller))


async def channel_inbound(request: Request) -> Response:
    gateway = _gateway(request)
    body = await _json_body(request)
    return ok(await receive_inbound(gateway, request.path_params["channel"], body))


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "status": "alive"})


async def readyz(request: Request) -> Response:
    """Ready or not; only a caller with the token learns the session count or the failure."""
    gateway: Gateway = request.app.state.gateway
    try:
        check_token(request.app.state.token, bearer_token(request))
        operator = True
    except SessionGateError:
        operator = False
    try:
        sessions = await gateway.store.count_sessions()
    except StoreUnavailableError as exc:
        if operator:
            return session_gate_error_response(exc)
        return JSONResponse({"ok": False, "status": "not-ready"}, status_code=503)
    detail = {"sessions": sessions} if operator else {}
    return JSONResponse({"ok": True, "status": "ready", **detail})


async def metrics(request: Request) -> Response:
    gateway = _gateway(request)
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def http_routes() -> list[Route]:
    """Every HTTP route; each one that addresses a session goes through the resolver."""
    return [
        Route("/tools/invoke", tools_invoke, methods=["POST"]),
        Route("/v1/sessions", list_sessions, methods=["GET"]),
        Route("/v1/sessions/{key:path}/messages", session_messages, methods=["GET"]),
        Route("/v1/sessions/{key:path}", show_session, methods=["GET"]),
        Route("/v1/channels/{channel}/inbound", channel_inbound, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
