"""`sessiongate mcp`: MCP over stdin/stdout for clients configured with a command.

The work is done by `sessiongate.mcp_bridge` (imported only when the command
runs: the SDK is heavy for the other commands). ``--session-key`` names the
session the client speaks as; it travels as the ``X-Session-Key`` header.
Nothing but protocol goes to stdout; logs and start-up errors go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sessiongate.cli_output import ConfigOption, TokenOption, UrlOption, err
from sessiongate.cli_target import resolve_target, target_token
from sessiongate.errors import SessionGateError
from sessiongate.extras import require_extra

__all__ = ["mcp_stdio"]


async def _preflight(url: str, token: str | None, session_key: str | None) -> None:
    """Fail at start with a typed error (unreachable, bad token, unknown own session)."""
    from sessiongate.client import AsyncSessionGateClient

    async with AsyncSessionGateClient(url, token, session_key=session_key) as client:
        await client.list_sessions(limit=1)


def _address(
    config_path: Path | None, url: str | None, token: str | None
) -> tuple[str, str | None]:
    """The gateway and token in the order every client command uses (see cli_target)."""
    target = resolve_target(url, config_path)
    return target.url, target_token(target, token)


def _log_to_stderr() -> None:
    # Through the logging module, whose last-resort handler writes to sys.stderr as it is
    # at each record (a test runner swaps it), never to stdout.
    import structlog

    structlog.configure(logger_factory=structlog.stdlib.LoggerFactory())


def mcp_stdio(
    session_key: Annotated[
        str | None,
        typer.Option(
            "--session-key",
            envvar="SESSIONGATE_SESSION_KEY",
            help="The session this client speaks as (sets what it may see; recorded as caller).",
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="A start-up error as its wire JSON (on stderr, like logs)."),
    ] = False,
) -> None:
    """Speak MCP on stdin/stdout (for clients configured with a command), via the gateway."""
    _log_to_stderr()
    try:
        require_extra("mcp", "mcp", "sessiongate mcp")
        address, secret = _address(config_path, url, token)
        asyncio.run(_preflight(address, secret, session_key))
    except SessionGateError as exc:
        if as_json:
            print(json.dumps(exc.to_wire()), file=sys.stderr)
        else:
            err.print(f"[bold red]error[/] [{exc.code}] {escape(exc.message)}", highlight=False)
        raise typer.Exit(1) from None
    from sessiongate.mcp_bridge import bridge_stdio

    asyncio.run(bridge_stdio(address, secret, session_key))
