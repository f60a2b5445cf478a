"""Authentication shared by HTTP and WebSocket: the bearer token, and the control page's
signed cookie (which the page gets in exchange for the token)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping

from itsdangerous import BadSignature, URLSafeTimedSerializer

from sessiongate.config import SessionGateConfig
from sessiongate.errors import ConfigError, UnauthorizedError
from sessiongate.paths import token_file
from sessiongate.private_files import make_private_dir

__all__ = [
    "UI_COOKIE",
    "UI_COOKIE_MAX_AGE",
    "check_token",
    "check_token_or_cookie",
    "gateway_token",
    "issue_ui_cookie",
    "read_ui_cookie",
    "token_file",
]

UI_COOKIE = "sessiongate_ui"
UI_COOKIE_MAX_AGE = 12 * 3600


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
        return path.read_text(encoding="utf-8").strip(), True
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


def issue_ui_cookie(token: str) -> tuple[str, str]:
    """A signed cookie value for a page that presented `token`, and its CSRF token."""
    csrf = secrets.token_urlsafe(24)
    return _cookie_serializer(token).dumps({"csrf": csrf}), csrf


def read_ui_cookie(token: str, value: str | None) -> str | None:
    """The CSRF token inside a valid, unexpired cookie; None for anything else."""
    if not value:
        return None
    try:
        data = _cookie_serializer(token).loads(value, max_age=UI_COOKIE_MAX_AGE)
    except BadSignature:  # also an expired signature
        return None
    csrf = data.get("csrf") if isinstance(data, dict) else None
    return csrf if isinstance(csrf, str) else None


def check_token_or_cookie(expected: str, presented: str | None, cookies: Mapping[str, str]) -> None:
    """Accept the gateway token, or (when none is presented) a signed-in page's cookie."""
    if presented is None and read_ui_cookie(expected, cookies.get(UI_COOKIE)) is not None:
        return
    check_token(expected, presented)
