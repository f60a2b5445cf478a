"""The A2A routes (``/a2a/…``, ``/.well-known/agent-card.json``), the SDK loaded on first use.

The ``a2a`` extra (``pip install 'sessiongate[a2a]'``, the official `a2a-sdk`)
is optional: without it these routes answer ``EXTRA_NOT_INSTALLED`` naming the
extra, and a gateway nobody reaches over A2A never imports the SDK. Every
request presents the gateway token first (and is charged to its request rate),
as on every other HTTP route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from sessiongate.extras import require_extra
from sessiongate.server.http import authenticate

if TYPE_CHECKING:
    from sessiongate.gateway import Gateway

__all__ = ["A2A_PATHS", "LazyA2AEndpoint"]

A2A_PATHS = ("/.well-known/agent-card.json", "/a2a/{path:path}")


class LazyA2AEndpoint:
    """The ASGI app behind `A2A_PATHS`: the token, then the A2A surface (built once)."""

    def __init__(self) -> None:
        self._app: ASGIApp | None = None

    def _surface(self, gateway: Gateway) -> ASGIApp:
        if self._app is None:
            require_extra("a2a", "a2a", "the A2A surface (/a2a, /.well-known/agent-card.json)")
            from sessiongate.server.a2a import a2a_app

            self._app = a2a_app(gateway)
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        # unauthorized, over the rate, or the extra missing: the HTTP edge answers the refusal
        authenticate(request, "a2a")
        app = self._surface(request.app.state.gateway)
        await app(scope, receive, send)
