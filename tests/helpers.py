"""What the tests share, in one module: free ports, `eventually()`, gateway processes, the
CLI in a process, and short ways to call a served gateway over HTTP and WebSocket.

Test modules import helpers from here (and fixtures from conftest.py), never from one
another. Waiting is always a bounded poll on the condition awaited (`eventually`,
`aeventually`), never a fixed sleep that passes whether or not the condition held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection, connect

from sessiongate.config import SessionGateConfig, parse_config
from sessiongate.store.base import NewSession, Provenance

T = TypeVar("T")
ConfigFactory = Callable[..., SessionGateConfig]

POLL_SECONDS = 0.02


def eventually(condition: Callable[[], T], timeout: float = 10.0, what: str = "the condition") -> T:
    """Poll `condition` until it returns something truthy (returned), for at most `timeout` s.

    Exceptions raised by `condition` count as "not yet"; the last one is chained
    to the AssertionError raised at the deadline.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # not yet: e.g. a server still starting
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s") from last
        time.sleep(POLL_SECONDS)


async def aeventually(
    condition: Callable[[], Awaitable[T]], timeout: float = 10.0, what: str = "the condition"
) -> T:
    """`eventually` for a coroutine condition, polling without blocking the event loop."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = await condition()
            if value:
                return value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s") from last
        await asyncio.sleep(POLL_SECONDS)


def sessiongate(
    *args: str,
    state: Path | None = None,
    cwd: Path | None = None,
    columns: int = 200,
    timeout: float = 90,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """One `sessiongate` command in its own process, as a user runs it.

    With `state`, that folder is the state folder and no config or token comes
    from the environment; otherwise the test's environment (its isolated state).
    """
    merged = {**os.environ, "COLUMNS": str(columns), **(env or {})}
    if state is not None:
        merged["SESSIONGATE_STATE_DIR"] = str(state)
        merged.pop("SESSIONGATE_CONFIG", None)
        merged.pop("SESSIONGATE_TOKEN", None)
    command = [sys.executable, "-m", "sessiongate", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=merged, cwd=cwd
    )


# ---------------------------------------------------------------- from conftest.py


INCIDENT_KEY = "agent:atlas:telegram:atlas:direct:6596143250"


STORE_KINDS = ["memory", "sqlite", "postgres"]


POSTGRES_URL = os.environ.get(
    "SESSIONGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def config_data(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The raw data of `make_config` (e.g. to write a config file for the CLI)."""
    data: dict[str, Any] = {
        "session": {"dmScope": "main"},
        "storage": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
        "tools": {
            "sessions": {"visibility": "all"},
            "agentToAgent": {"enabled": True, "allow": ["*"]},
        },
        "agents": {"list": [{"id": "atlas", "default": True}, {"id": "peggy"}]},
    }
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split("__")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return data


def make_config(tmp_path: Path, **overrides: Any) -> SessionGateConfig:
    """Two echo agents (atlas default, peggy) that may message each other, on SQLite."""
    return parse_config(config_data(tmp_path, **overrides), "test")


async def require_postgres() -> None:
    """Skip (outside CI) or fail (under CI=true) when PostgreSQL is not reachable."""
    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc!r}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    await conn.close()


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A postgresql:// URL with a fresh schema of its own, dropped afterwards."""
    await require_postgres()
    schema = f"sg_test_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        conn = await asyncpg.connect(POSTGRES_URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


class _QuietServer:
    """Serve any ASGI app on a free loopback port (fake upstreams: webhooks, LLM endpoints)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            def capture_signals(self) -> Any:  # leave pytest's handlers alone
                import contextlib

                return contextlib.nullcontext()

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = Server(config)
        self.url = ""

    async def __aenter__(self) -> _QuietServer:
        import asyncio

        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            assert not self.task.done(), "fake upstream did not start"
            await asyncio.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.task


def upstream(app: Any) -> _QuietServer:
    """`async with upstream(app) as fake:` — `fake.url` serves `app`."""
    return _QuietServer(app)


# ---------------------------------------------------------------- from processes.py


PROCESS_TOKEN = "multi-process-test-token-0123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class GatewayProcess:
    """One `sessiongate serve` process with a config written for it."""

    def __init__(self, workdir: Path, name: str, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.name = name
        data = {**config, "gateway": {**config.get("gateway", {}), "port": self.port,
                                      "auth": {"token": PROCESS_TOKEN}}}  # fmt: skip
        self.config_path = workdir / f"{name}.json5"
        self.config_path.write_text(json.dumps(data))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {PROCESS_TOKEN}"}

    def start(self) -> GatewayProcess:
        log = (self.workdir / f"{self.name}.log").open("ab")
        env = {**os.environ, "SESSIONGATE_STATE_DIR": str(self.workdir / f"{self.name}-state")}
        command = [sys.executable, "-m", "sessiongate", "serve", "--config", str(self.config_path)]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        for _ in range(400):
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"{self.name} did not become healthy: {self.log()}")

    def log(self) -> str:
        path = self.workdir / f"{self.name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self) -> None:
        """kill -9: no shutdown, no cleanup."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- from test_http.py


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def invoke(
    http: httpx.AsyncClient, tool: str, args: Any, session_key: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"tool": tool, "args": args}
    if session_key:
        body["sessionKey"] = session_key
    return await http.post("/tools/invoke", json=body)


async def session_keys(http: httpx.AsyncClient) -> list[str]:
    response = await http.get("/v1/sessions", params={"limit": 500})
    assert response.status_code == 200
    return [s["key"] for s in response.json()["result"]["sessions"]]


def client_for(gw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.url, headers=auth(gw.token), timeout=30)


async def wait_for_messages(
    http: httpx.AsyncClient, key: str, count: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Poll a transcript until it holds `count` messages (bounded)."""
    messages: list[dict[str, Any]] = []
    for _ in range(int(timeout / 0.02)):
        response = await http.get(f"/v1/sessions/{key}/messages", params={"limit": 1000})
        messages = response.json()["result"]["messages"]
        if len(messages) >= count:
            return messages
        await asyncio.sleep(0.02)
    raise AssertionError(f"{key} has {len(messages)} messages, expected {count}")


# ---------------------------------------------------------------- from test_ws.py


async def ws_request(ws: ClientConnection, rid: Any, method: str, **params: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
    return await response_to(ws, rid)


async def response_to(ws: ClientConnection, rid: Any) -> dict[str, Any]:
    """Skip events until the response with this id arrives (bounded by the frame count)."""
    for _ in range(1000):
        frame = json.loads(await ws.recv())
        if frame["type"] == "res" and frame["id"] == rid:
            return dict(frame)
    raise AssertionError(f"no response to {rid}")


async def connected(gw: Any, **params: Any) -> ClientConnection:
    ws = await connect(gw.ws_url)
    answer = await ws_request(ws, 0, "connect", token=gw.token, **params)
    assert answer["ok"], answer
    return ws


# ---------------------------------------------------------------- from test_ui.py


async def sign_in(http: httpx.AsyncClient, token: str) -> str:
    """Sign in; return the CSRF token the page's forms carry."""
    response = await http.post("/ui/signin", data={"token": token, "next": "/ui/send"})
    assert response.status_code == 303 and response.headers["location"] == "/ui/send"
    page = (await http.get("/ui/send")).text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found[1]


# ---------------------------------------------------------------- from test_runtimes.py


def completion(message: dict[str, Any]) -> JSONResponse:
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    choice = {"index": 0, "finish_reason": finish, "message": {"role": "assistant", **message}}
    return JSONResponse(
        {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "fake",
            "choices": [choice],
        }
    )


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    function = {"name": name, "arguments": json.dumps(arguments)}
    return {
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


def webhook_app(delay: float) -> Starlette:
    async def slow(request: Request) -> JSONResponse:
        body = await request.json()
        await asyncio.sleep(delay)
        return JSONResponse({"reply": f"done: {body['message']}"})

    async def broken(request: Request) -> PlainTextResponse:
        return PlainTextResponse("upstream exploded", status_code=500)

    return Starlette(
        routes=[Route("/slow", slow, methods=["POST"]), Route("/broken", broken, methods=["POST"])]
    )


def webhook_config(config_factory: ConfigFactory, url: str) -> SessionGateConfig:
    return config_factory(
        agents={
            "list": [
                {"id": "atlas", "default": True},
                {"id": "slow", "model": "webhook", "webhook": {"url": f"{url}/slow"}},
                {"id": "broken", "model": "webhook", "webhook": {"url": f"{url}/broken"}},
            ]
        },
    )


# ---------------------------------------------------------------- from test_fail_closed.py


def write_config_file(tmp_path: Path, config: SessionGateConfig) -> Path:
    path = tmp_path / "gateway.json5"
    path.write_text(json.dumps(config.model_dump(by_alias=True, mode="json", exclude_none=True)))
    return path


# ---------------------------------------------------------------- from test_openclaw_ws.py


# a recording of OpenClaw's CLI talking to its gateway
FIXTURE = Path(__file__).parent / "fixtures" / "openclaw-2026.5.7" / "cli-frames.jsonl"
ERROR_KEYS = {"code", "message", "details", "retryable", "retryAfterMs"}


def assert_error_object(frame: dict[str, Any]) -> dict[str, Any]:
    assert frame["ok"] is False, frame
    error = frame["error"]
    assert set(error) <= ERROR_KEYS, error
    assert error["message"], error
    return dict(error)


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await ws.recv()))


def openclaw_url(gw: Any) -> str:
    return "ws" + gw.url.removeprefix("http") + "/"


async def openclaw_request(
    ws: ClientConnection, rid: str, method: str, **params: Any
) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
    while True:
        frame = await recv(ws)
        if frame["type"] == "res" and frame["id"] == rid:
            return frame


async def openclaw_client(gw: Any, scopes: list[str]) -> ClientConnection:
    ws = await connect(openclaw_url(gw))
    challenge = await recv(ws)
    assert challenge["event"] == "connect.challenge", challenge
    params = {
        "minProtocol": 3,
        "maxProtocol": 3,
        "client": {"id": "cli", "version": "2026.5.7", "platform": "linux", "mode": "cli"},
        "role": "operator",
        "scopes": scopes,
        "auth": {"token": gw.token},
    }
    hello = await openclaw_request(ws, "c", "connect", **params)
    assert hello["ok"] and hello["payload"]["type"] == "hello-ok", hello
    return ws


# ---------------------------------------------------------------- from test_store_conformance.py


def new_session(
    key: str, agent: str = "atlas", kind: str = "main", label: str | None = None
) -> NewSession:
    return NewSession(key, agent, kind, Provenance("address", "test"), label)


# ---------------------------------------------------------------- from test_operations.py


CLI_TOKEN = "operations-test-token-0123456789"


def write_cli_config(path: Path, **sections: Any) -> Path:
    """A config file for CLI tests: a free port, CLI_TOKEN, and `sections`."""
    data = {"gateway": {"port": free_port(), "auth": {"token": CLI_TOKEN}}, **sections}
    path.write_text(json.dumps(data))
    return path


def detach(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    started = sessiongate("serve", "--detach", *args, state=state)
    assert started.returncode == 0, started.stdout + started.stderr
    return started


def records(state: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((state / "run").glob("gateway-*.json"))]


# ---------------------------------------------------------------- A2A (a2a-sdk imported when used)


@contextlib.asynccontextmanager
async def a2a_client(
    gw: Any,
    agent: str | None = None,
    *,
    streaming: bool = False,
    caller: str | None = None,
    binding: str = "JSONRPC",
) -> AsyncIterator[Any]:
    """The `a2a-sdk` client for an agent's card (the default agent's without `agent`), with the
    gateway token and, given `caller`, the X-Session-Key header; `binding`: JSONRPC or
    HTTP+JSON."""
    from a2a.client import ClientConfig, ClientFactory

    headers = auth(gw.token) | ({"x-session-key": caller} if caller else {})
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        config = ClientConfig(
            httpx_client=http, streaming=streaming, supported_protocol_bindings=[binding]
        )
        factory = ClientFactory(config)
        url = gw.url if agent is None else f"{gw.url}/a2a/{agent}"
        yield await factory.create_from_url(url)


def a2a_user_message(text: str, context_id: str | None = None) -> Any:
    """An A2A user message with a fresh messageId (in `context_id`, if given)."""
    from a2a.types.a2a_pb2 import Message, Part, Role

    message = Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text=text)])
    if context_id is not None:
        message.context_id = context_id
    return message


# ---------------------------------------------------------------- the OpenClaw fixture

OPENCLAW_STORE = Path(__file__).parent / "fixtures" / "openclaw-2026.5.7" / "store"
MAIN_MESSAGES = 24
PHANTOM_MESSAGES = 4


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def write_config(tmp_path: Path, storage_url: str) -> Path:
    config = tmp_path / "sessiongate.json5"
    config.write_text(
        json.dumps({
            "session": {"dmScope": "main"},
            "storage": {"url": storage_url},
            "audit": {"path": str(tmp_path / "audit.jsonl")},
            "agents": {"list": [{"id": "atlas", "default": True}, {"id": "peggy"}]},
        }),
        encoding="utf-8",
    )  # fmt: skip
    return config


def import_store(config: Path, state_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return sessiongate(
        "import", "openclaw", str(state_dir), "-c", str(config), "--json", *extra, timeout=120
    )
