"""Authentication shared by HTTP and WebSocket: the bearer token, and the control page's
signed cookie (which the page gets in exchange for the token)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from sessiongate.config import SessionGateConfig
from sessiongate.errors import ConfigError, UnauthorizedError
from sessiongate.paths import token_file
from sessiongate.private_files import make_private_dir, open_no_follow
from sessiongate.store.base import PageSessions

__all__ = [
    "UI_COOKIE",
    "UI_COOKIE_MAX_AGE",
    "PageCookie",
    "check_token",
    "check_token_or_cookie",
    "gateway_token",
    "issue_ui_cookie",
    "read_ui_cookie",
    "signed_in_page",
    "token_file",
]

UI_COOKIE = "sessiongate_ui"
UI_COOKIE_MAX_AGE = 12 * 3600
MAX_COOKIE_CHARS = 512  # a genuine cookie is ~150 characters; nothing longer is unsigned


def gateway_token(config: SessionGateConfig) -> tuple[str, bool]:
    """The token callers must present, and whether it was generated (not configured)."""
    configured = config.gateway.auth.token
    if configured:
        return configured, False
    if not config.gateway.is_loopback:
        raise ConfigError(
            f"gateway.bind={config.gateway.bind} listens beyond this machine and needs "
            "gateway.auth.token",
            details={"problems": ["gateway.auth.token: required for a non-loopback bind"]},
        )
    path = token_file()
    if path.exists():
        with open_no_follow(path) as file:  # a symlinked token is refused (ELOOP), not adopted
            return file.read().decode("utf-8").strip(), True
    make_private_dir(path.parent)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token, True


def check_token(expected: str, presented: str | None) -> None:
    """Raise UnauthorizedError unless `presented` is the gateway token."""
    if not presented:
        raise UnauthorizedError(
            "missing token: send 'Authorization: Bearer <token>'",
            details={"hint": "the token is gateway.auth.token or the state dir's gateway.token"},
        )
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise UnauthorizedError("invalid token", details={})


def _cookie_serializer(token: str) -> URLSafeTimedSerializer:
    # Derived from the gateway token: a new token signs every page out.
    secret = hmac.new(token.encode(), b"sessiongate control page cookie", hashlib.sha256)
    return URLSafeTimedSerializer(secret.hexdigest(), salt="sessiongate.ui")


@dataclass(frozen=True, slots=True)
class PageCookie:
    """What a signed page cookie holds: the CSRF token of the page's forms, and the sign-in
    it belongs to (recorded in the store until the page signs out)."""

    csrf: str
    session_id: str


def issue_ui_cookie(token: str) -> tuple[str, PageCookie]:
    """A signed cookie value for a page that presented `token`, and what it holds (the
    caller records `session_id` with `PageSessions.open_page_session`)."""
    cookie = PageCookie(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
    data = {"csrf": cookie.csrf, "sid": cookie.session_id}
    return _cookie_serializer(token).dumps(data), cookie


def read_ui_cookie(token: str, value: str | None) -> PageCookie | None:
    """What a validly signed, unexpired cookie holds; None for anything else. (Whether its
    sign-in is still open is the store's to say: `signed_in_page`.)"""
    if not value or len(value) > MAX_COOKIE_CHARS:
        return None
    try:
        data = _cookie_serializer(token).loads(value, max_age=UI_COOKIE_MAX_AGE)
    except BadSignature:  # also an expired signature
        return None
    if not isinstance(data, dict):
        return None
    csrf, session_id = data.get("csrf"), data.get("sid")
    if isinstance(csrf, str) and isinstance(session_id, str):
        return PageCookie(csrf, session_id)
    return None


async def signed_in_page(
    sessions: PageSessions, token: str, value: str | None
) -> PageCookie | None:
    """The cookie of a page that is signed in now: signed with `token` (a new token signs
    every page out), unexpired, and not signed out in any gateway process."""
    cookie = read_ui_cookie(token, value)
    if cookie is None or not await sessions.page_session_open(cookie.session_id):
        return None
    return cookie


async def check_token_or_cookie(
    expected: str,
    presented: str | None,
    cookies: Mapping[str, str],
    sessions: PageSessions,
    check: Callable[[str, str | None], None] = check_token,
) -> None:
    """Accept the gateway token (by `check`), or (when none is presented) a signed-in page's
    cookie."""
    if presented is None and await signed_in_page(sessions, expected, cookies.get(UI_COOKIE)):
        return
    check(expected, presented)
