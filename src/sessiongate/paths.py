"""Where sessiongate keeps its state on this machine, for the server and the client alike.

A client command reads the token the gateway generated from the same file the
gateway wrote it to; both take the path from here (not from the server's
modules, whose imports a client must not pay for).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_config_path", "state_dir", "token_file"]


def state_dir() -> Path:
    """Where sessiongate keeps its state: ``SESSIONGATE_STATE_DIR`` or ~/.sessiongate."""
    override = os.environ.get("SESSIONGATE_STATE_DIR")
    return Path(override).expanduser() if override else Path.home() / ".sessiongate"


def default_config_path() -> Path:
    """The config file used when neither --config nor SESSIONGATE_CONFIG is given."""
    return state_dir() / "config.json5"


def token_file() -> Path:
    """Where a generated gateway token is kept (0600)."""
    return state_dir() / "gateway.token"
