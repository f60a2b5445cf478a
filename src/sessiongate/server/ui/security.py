"""Sign-in, CSRF and security headers of the control page.

The page exchanges the gateway token once for a signed, HttpOnly,
``SameSite=Strict`` cookie (see `sessiongate.server.auth`); the token itself
never reaches a URL, the page or its storage. Every state-changing form carries
the cookie's CSRF token, and is refused from another origin.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessiongate.catchall import internal_error
from sessiongate.errors import (
    ForbiddenError,
    SessionGateError,
    UnauthorizedError,
)
from sessiongate.server.auth import UI_COOKIE, UI_COOKIE_MAX_AGE, signed_in_page
from sessiongate.server.requests import read_form, same_origin
from sessiongate.server.ui.rendering import render_error

__all__ = ["PREFIX", "SecurityHeaders", "Signed", "action", "page", "set_cookie"]

PREFIX = "/ui"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
]


class SecurityHeaders:
    """Adds the page's security headers to every response under /ui."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed-in page request: its CSRF token, for the forms it renders."""

    csrf: str
    session_id: str


async def signed_in(request: Request) -> Signed | None:
    store = request.app.state.gateway.page_sessions
    cookie = await signed_in_page(store, request.app.state.token, request.cookies.get(UI_COOKIE))
    if cookie is None:
        return None
    request.app.state.connection_guard.authenticated(request.client)
    return Signed(cookie.csrf, cookie.session_id)


def set_cookie(response: Response, request: Request, value: str) -> None:
    """Set the sign-in cookie (Secure when the page is served over HTTPS)."""
    response.set_cookie(
        UI_COOKIE,
        value,
        max_age=UI_COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


PageHandler = Callable[[Request, Signed], Awaitable[Response]]
ActionHandler = Callable[[Request, Signed, dict[str, str]], Awaitable[Response]]


async def answering(request: Request, csrf: str, work: Awaitable[Response]) -> Response:
    """The page's one catch-all: a refusal is shown as the error page (same code, message
    and details as on the wire); anything untyped as ``INTERNAL_ERROR`` with the request id
    that the log shows with the traceback."""
    try:
        return await work
    except SessionGateError as exc:
        return render_error(request, exc, csrf)
    except Exception as exc:
        where = f"{request.method} {request.url.path}"
        return render_error(request, internal_error(exc, "ui", where), csrf)


def page(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """A view: signed-out browsers go to the sign-in form and come back afterwards."""

    @functools.wraps(handler)
    async def view(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{PREFIX}/signin?next={quote(target)}", 303)
        return await answering(request, signed.csrf, handler(request, signed))

    return view


def action(handler: ActionHandler) -> Callable[[Request], Awaitable[Response]]:
    """A state-changing form post: signed in, same origin, with the page's CSRF token."""

    async def checked(request: Request, signed: Signed | None) -> Response:
        if signed is None:
            raise UnauthorizedError("sign in to the control page first", details={})
        form = await read_form(request)
        if not same_origin(request, absent=True) or form.get("csrf") != signed.csrf:
            raise ForbiddenError(
                "this form is stale or came from another site: reload the page and retry",
                details={"hint": "forms carry a token that is valid while you are signed in"},
            )
        return await handler(request, signed, form)

    @functools.wraps(handler)
    async def post(request: Request) -> Response:
        signed = await signed_in(request)
        return await answering(request, signed.csrf if signed else "", checked(request, signed))

    return post
