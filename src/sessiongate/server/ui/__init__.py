"""The control page at /ui: see, search and repair the gateway in a browser.

Server-rendered (Jinja2) with a little of this project's own JavaScript for the
live parts; signed in by cookie; every view calls the gateway like any other
surface.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route

from sessiongate.server.ui.actions import doctor_plan, doctor_repair, doctor_view, send, send_form
from sessiongate.server.ui.assets import serve_asset
from sessiongate.server.ui.lifecycle import lifecycle_apply, lifecycle_plan
from sessiongate.server.ui.security import PREFIX, SecurityHeaders
from sessiongate.server.ui.views import (
    audit_view,
    message_rows,
    overview,
    page_not_found,
    root,
    session_view,
    sessions_view,
    signin,
    signin_form,
    signout,
)

__all__ = ["page_routes", "ui_routes"]


def page_routes() -> list[Route]:
    """The page's routes, relative to /ui."""
    return [
        Route("/", overview, methods=["GET"]),
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/sessions", sessions_view, methods=["GET"]),
        Route("/sessions/{key:path}", session_view, methods=["GET"]),
        Route("/messages", message_rows, methods=["GET"]),
        Route("/audit", audit_view, methods=["GET"]),
        Route("/doctor", doctor_view, methods=["GET"]),
        Route("/doctor/plan", doctor_plan, methods=["GET"]),
        Route("/doctor/repair", doctor_repair, methods=["POST"]),
        Route("/lifecycle/plan", lifecycle_plan, methods=["GET"]),
        Route("/lifecycle/apply", lifecycle_apply, methods=["POST"]),
        Route("/send", send_form, methods=["GET"]),
        Route("/send", send, methods=["POST"]),
        Route("/static/{name}", serve_asset, methods=["GET"]),
        Route("/{rest:path}", page_not_found, methods=["GET", "HEAD"]),  # last: nothing else
    ]


def ui_routes() -> list[BaseRoute]:
    """`/ui/…`, and `GET /` sending a browser there."""
    return [
        Route("/", root, methods=["GET"]),
        Mount(PREFIX, routes=page_routes(), middleware=[Middleware(SecurityHeaders)]),
    ]
