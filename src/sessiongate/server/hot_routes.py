"""The per-message HTTP routes served without the router: ``POST /tools/invoke`` and
``GET /v1/sessions/{key}``.

Profile (py-spy, fire-and-forget sends): between uvicorn and the route's function,
starlette's router (a regex per route), `Route.handle`, `request_response`, its
exception wrapper and the `Request` object took ~10% of a send. `HotRoutes` sits where
the router was (inside the access log and OpenTelemetry's middleware, which see it as
before): an exact method and path (and, for the read, no query string) is answered here;
everything else goes on to the router. The answer is the route's own: the same checks
in the same order (`http.check_bearer`, `requests.receive_body`, `http.invoke_tool`),
the same response, and what it raises reaches the same catch-all. The scope gets the
keys the router would have set (``route``, ``endpoint``, ``path_params``).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import State
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sessiongate.gateway import Gateway
from sessiongate.resolver import Caller
from sessiongate.server.access_log import speak_errors
from sessiongate.server.http import check_bearer, invoke_tool, ok, show_session, tools_invoke
from sessiongate.server.openclaw_http import openclaw_envelope, openclaw_error
from sessiongate.server.requests import receive_body
from sessiongate.tools.args import SessionArgs
from sessiongate.wire import check_text, decode_json

__all__ = ["HotRoutes"]

_SESSIONS = "/v1/sessions/"


class HotRoutes:
    """ASGI: the hot routes answered at once, the rest handed to `router` (see the module)."""

    def __init__(self, state: State, router: ASGIApp, routes: list[BaseRoute]) -> None:
        self.state = state
        self.router = router
        self.invoke_route = _route_of(routes, tools_invoke)
        self.show_route = _route_of(routes, show_session)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == "/tools/invoke":
                _routed(scope, self.router, self.invoke_route, {})
                await (await self._tools_invoke(scope, receive))(scope, receive, send)
                return
            if method == "GET" and path.startswith(_SESSIONS) and not scope["query_string"]:
                key = path[len(_SESSIONS) :]
                # what `{key:path}` matches (`.*`: no newline), not the /messages route
                if key and "\n" not in key and not key.endswith("/messages"):
                    _routed(scope, self.router, self.show_route, {"key": key})
                    await (await self._show_session(scope, key))(scope, receive, send)
                    return
        await self.router(scope, receive, send)

    async def _tools_invoke(self, scope: Scope, receive: Receive) -> Response:
        """`http.tools_invoke`, from the scope."""
        gateway: Gateway = self.state.gateway
        openclaw = gateway.config.gateway.compat.openclaw
        if openclaw:
            speak_errors(scope, openclaw_error)
        authorization, content_length, _ = _headers(scope)
        check_bearer(self.state, authorization, scope.get("client"), "http")
        limit = gateway.config.gateway.max_body_bytes
        raw = decode_json(await receive_body(receive, content_length, limit))
        result = await invoke_tool(gateway, raw)
        return openclaw_envelope(result) if openclaw else ok(result)

    async def _show_session(self, scope: Scope, key: str) -> Response:
        """`http.show_session` without a query string (``followAlias`` true), from the scope."""
        gateway: Gateway = self.state.gateway
        authorization, _, own = _headers(scope)
        check_bearer(self.state, authorization, scope.get("client"), "http")
        check_text(key, "path")
        args = SessionArgs.model_construct(session_key=key, follow_alias=True)
        if own is not None:
            check_text(own, "x-session-key")
        caller: Caller = await gateway.caller_for(own, "http")
        return ok((await gateway.show(args, caller)).to_wire())


def _headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """The first Authorization, Content-Length and X-Session-Key headers (as starlette's
    `Headers.get` reads them: latin-1)."""
    authorization = content_length = own = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"content-length":
            if content_length is None:
                content_length = value.decode("latin-1")
        elif name == b"x-session-key" and own is None:
            own = value.decode("latin-1")
    return authorization, content_length, own


def _routed(scope: Scope, router: ASGIApp, route: Route, path_params: dict[str, Any]) -> None:
    """The keys starlette's router sets on a match (OpenTelemetry reads ``route``)."""
    scope.setdefault("router", router)
    scope["route"] = route
    scope["endpoint"] = route.endpoint
    scope["path_params"] = path_params


def _route_of(routes: list[BaseRoute], endpoint: Any) -> Route:
    for route in routes:
        if isinstance(route, Route) and route.endpoint is endpoint:
            return route
    raise LookupError(f"no route serves {endpoint.__name__}")
