"""Client-side code imports nothing of the server: what each entry point loads, in a fresh process.

A CLI command, `sessiongate.client`, `errors` and `keys` must start fast on a laptop
and install beside other libraries: they load no server module, no uvicorn,
starlette, Jinja2 or MCP SDK. (The stdio MCP bridge uses the SDK, which itself
imports starlette and uvicorn; it still loads nothing of sessiongate's server.)
`benchmarks/client_startup.py` prints what these boundaries buy in milliseconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import free_port

SERVER_SIDE = (
    "sessiongate.server",
    "sessiongate.gateway",
    "sessiongate.resolver",
    "sessiongate.store",
    "sessiongate.runtime",
    "sessiongate.tools",
    "jinja2",
)
WEB_STACK = ("uvicorn", "starlette", "mcp", "mcp_types", "sse_starlette", "cryptography", "a2a",
             "google.protobuf")  # fmt: skip
NOT_ON_THE_CLIENT = (*SERVER_SIDE, *WEB_STACK)


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)  # fmt: skip
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return set(loaded)


def under(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


@pytest.mark.parametrize(
    ("module", "also_absent"),
    [
        ("sessiongate", ("pydantic", "httpx", "structlog", "importlib.metadata")),
        ("sessiongate.errors", ("pydantic", "httpx", "structlog")),
        ("sessiongate.keys", ("pydantic", "httpx", "structlog")),
        ("sessiongate.paths", ("pydantic", "httpx", "structlog")),
        ("sessiongate.client", ("pydantic", "structlog")),
        # the CLI's module: `--version` and `--help` need typer and rich, nothing of the rest
        ("sessiongate.cli", ("pydantic", "httpx", "structlog")),
    ],
)
def test_a_client_side_import_loads_nothing_of_the_server(
    module: str, also_absent: tuple[str, ...]
) -> None:
    loaded = modules_after(f"import {module}")
    assert under(loaded, NOT_ON_THE_CLIENT) == []
    assert under(loaded, also_absent) == []


def test_a_client_command_loads_nothing_of_the_server() -> None:
    """`sessiongate send` from argv to its printed error (nobody listens on the port)."""
    argv = ["sessiongate", "send", "--url", f"http://127.0.0.1:{free_port()}", "main", "hi"]
    code = (
        "import sys\n"
        f"sys.argv = {argv!r}\n"
        "from sessiongate.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 1, exc.code\n"
    )
    loaded = modules_after(code)
    assert "sessiongate.client" in loaded  # it did run the command
    assert under(loaded, NOT_ON_THE_CLIENT) == []
    assert under(loaded, ("structlog",)) == []  # client commands never log


def test_the_stdio_bridge_loads_nothing_of_sessiongates_server() -> None:
    loaded = modules_after("import sessiongate.mcp_bridge")
    assert under(loaded, SERVER_SIDE) == []
    assert under(loaded, ("sessiongate.config", "pydantic_settings")) == []


def test_the_root_package_exports_lazily() -> None:
    code = (
        "import sys, sessiongate\n"
        "assert 'sessiongate.resolver' not in sys.modules\n"
        "assert sessiongate.Resolver.__module__ == 'sessiongate.resolver'\n"
        "assert sessiongate.SessionNotFoundError.__module__ == 'sessiongate.errors'\n"
        "assert sessiongate.__version__\n"
        "assert set(sessiongate.__all__) <= set(dir(sessiongate))\n"
    )
    assert "sessiongate.resolver" in modules_after(code)


def test_the_server_loads_the_a2a_sdk_only_when_a2a_is_called() -> None:
    """The A2A surface is mounted lazily: building the app imports no a2a-sdk or protobuf."""
    code = (
        "from sessiongate.config import parse_config\n"
        "from sessiongate.server.app import create_app\n"
        "create_app(parse_config({}, 'test'), 'token')\n"
    )
    loaded = modules_after(code)
    assert "sessiongate.server.a2a_mount" in loaded
    assert under(loaded, ("a2a", "google.protobuf", "sessiongate.server.a2a")) == []
