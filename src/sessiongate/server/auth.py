"""Bearer-token authentication shared by HTTP and WebSocket."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from sessiongate.config import SessionGateConfig, state_dir
from sessiongate.errors import ConfigError, UnauthorizedError
from sessiongate.private_files import make_private_dir

__all__ = ["check_token", "gateway_token", "token_file"]


def token_file() -> Path:
    """Where a generated token is kept (0600)."""
    return state_dir() / "gateway.token"


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
