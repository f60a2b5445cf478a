"""What every `sessiongate` command shares: consoles, options, errors as one line and an exit code.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from sessiongate.errors import (
    ConfigError,
    InvalidRequestError,
    InvalidSessionKeyError,
    SessionGateError,
)

__all__ = [
    "ConfigOption",
    "GatewayChoice",
    "JsonOption",
    "TokenOption",
    "UrlOption",
    "VerboseOption",
    "emit_json",
    "err",
    "fail",
    "gateway_options",
    "guarded",
    "out",
    "run",
]

T = TypeVar("T")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

USAGE_ERRORS = (ConfigError, InvalidRequestError, InvalidSessionKeyError)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $SESSIONGATE_CONFIG, "
        "~/.sessiongate/config.json5, else the embedded default).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="Gateway URL (default: --config's port, else the run record, else 18789)."
    ),
]
GatewayPortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=1,
        max=65535,
        help="The gateway on this port (several serving one --config or state folder).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="SESSIONGATE_TOKEN",
        help="Gateway token (default: gateway.auth.token, else the state dir's gateway.token).",
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Say which gateway this talks to, and why.")
]


@dataclass(frozen=True, slots=True)
class GatewayChoice:
    """What a command that talks to a running gateway was told about which one, and how."""

    config_path: Path | None
    url: str | None
    port: int | None
    token: str | None
    verbose: bool


_CHOICE_OPTIONS = (
    inspect.Parameter("config_path", inspect.Parameter.KEYWORD_ONLY, annotation=ConfigOption,
                      default=None),
    inspect.Parameter("url", inspect.Parameter.KEYWORD_ONLY, annotation=UrlOption, default=None),
    inspect.Parameter("port", inspect.Parameter.KEYWORD_ONLY, annotation=GatewayPortOption,
                      default=None),
    inspect.Parameter("token", inspect.Parameter.KEYWORD_ONLY, annotation=TokenOption,
                      default=None),
    inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, annotation=VerboseOption,
                      default=False),
)  # fmt: skip


def gateway_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command`'s ``gateway: GatewayChoice`` argument to the CLI as the options that
    choose a gateway (--config, --url, --port, --token, -v), in its place."""
    signature = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name == "gateway":
            parameters.extend(_CHOICE_OPTIONS)
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def with_choice(**arguments: Any) -> None:
        chosen = {option.name: arguments.pop(option.name) for option in _CHOICE_OPTIONS}
        command(**arguments, gateway=GatewayChoice(**chosen))

    with_choice.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return with_choice


def fail(error: SessionGateError, as_json: bool) -> NoReturn:
    """Print one error and exit with its code (2 usage/config, 1 otherwise)."""
    if as_json:
        out.print_json(json.dumps(error.to_wire()))
    else:
        # messages quote patterns like [a-z0-9]: never let rich read them as markup
        err.print(f"[bold red]error[/] [{error.code}] {escape(error.message)}", highlight=False)
        hint = error.details.get("hint") or _hint_for(error)
        if hint:
            err.print(f"[dim]hint:[/] {escape(str(hint))}", highlight=False)
    raise typer.Exit(2 if isinstance(error, USAGE_ERRORS) else 1)


def _hint_for(error: SessionGateError) -> str | None:
    suggestions = error.details.get("suggestions")
    if suggestions:
        return "did you mean " + ", ".join(suggestions) + "?"
    if isinstance(error, ConfigError) and "\n- " in error.message:  # a list of problems above
        return "fix the lines above; `sessiongate config schema` describes every key"
    return None


@contextlib.contextmanager
def guarded(as_json: bool = False) -> Iterator[None]:
    """Turn sessiongate errors into one printed line and an exit code."""
    try:
        yield
    except SessionGateError as exc:
        fail(exc, as_json)


def run(awaitable: Awaitable[T]) -> T:
    """Run one coroutine to completion (each CLI command is one event loop)."""

    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def emit_json(data: Any) -> None:
    """Print `data` as JSON on stdout."""
    out.print_json(json.dumps(data, default=str))
