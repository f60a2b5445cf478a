"""The Python client, graceful shutdown, and `sessiongate serve` as a real process."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessiongate.client import AsyncSessionGateClient, SessionGateClient
from sessiongate.config import SessionGateConfig
from sessiongate.errors import (
    GatewayUnreachableError,
    InvalidSessionKeyError,
    RunTimeoutError,
    SessionNotFoundError,
    UnauthorizedError,
)
from sessiongate.store import SqliteSessionStore
from tests.helpers import INCIDENT_KEY, free_port, upstream, webhook_app, webhook_config

from .threaded import gateway_in_thread

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]


async def test_async_client_raises_typed_errors(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw:
        async with AsyncSessionGateClient(
            gw.url, gw.token, session_key="agent:peggy:main"
        ) as client:
            with pytest.raises(SessionNotFoundError) as info:
                await client.send(INCIDENT_KEY, "hi")
            assert info.value.details["suggestions"] == ["agent:atlas:main"]
            with pytest.raises(InvalidSessionKeyError):
                await client.send("agent:at las:main", "hi")
            reply = await client.send("agent:atlas:main", "hi")
            assert reply["reply"] == "echo: hi"
            history = await client.history("agent:atlas:main")
            assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
            spawned = await client.spawn("atlas", "work", label="w")
            assert spawned["childSessionKey"].startswith("agent:atlas:subagent:")
        async with AsyncSessionGateClient(gw.url, "wrong-token") as intruder:
            with pytest.raises(UnauthorizedError):
                await intruder.list_sessions()


async def test_must_exist_guards_a_permissive_gateway(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, AsyncSessionGateClient(gw.url, gw.token) as client:
        with pytest.raises(SessionNotFoundError):
            await client.send(INCIDENT_KEY, "hi", must_exist=True)
        keys = [s["key"] for s in (await client.list_sessions())["sessions"]]
        assert INCIDENT_KEY not in keys
        assert (await client.send("MAIN", "ok", must_exist=True))["status"] == "ok"


async def test_sync_client_works_in_a_thread_whose_event_loop_is_running(
    config_factory: ConfigFactory,
) -> None:
    asyncio.get_running_loop()  # this test's own loop runs here, as in a notebook
    silent = socket.socket()  # a webhook that takes connections and never answers: a slow run
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    webhook = {"url": f"http://127.0.0.1:{silent.getsockname()[1]}/", "timeoutSeconds": 0.5}
    agents = [{"id": "atlas", "default": True}, {"id": "peggy"},
              {"id": "slow", "model": "webhook", "webhook": webhook}]  # fmt: skip
    with silent, gateway_in_thread(config_factory(agents={"list": agents})) as threaded:
        gw = threaded.running
        with SessionGateClient(gw.url, gw.token, session_key="agent:peggy:main") as client:
            assert (
                client.send("main", "from a running loop")["reply"] == "echo: from a running loop"
            )
            assert client.resolve("MAIN")["key"] == "agent:atlas:main"
            assert [m["role"] for m in client.history("main")["messages"]] == ["user", "assistant"]
            assert client.spawn("atlas", "t", label="w")["status"] == "accepted"
            assert client.list_sessions(agent_id="atlas", limit=10)["sessions"]
            with pytest.raises(SessionNotFoundError):
                client.send(INCIDENT_KEY, "hi", must_exist=True)
            with pytest.raises(RunTimeoutError) as info:
                client.send("agent:slow:main", "slow", timeout_seconds=1e-9, raise_on_timeout=True)
            assert info.value.details["runId"]
        assert INCIDENT_KEY not in threaded.session_keys()


def test_the_sync_client_has_the_async_clients_signatures() -> None:
    public = [n for n in dir(AsyncSessionGateClient) if not n.startswith("_")]
    assert {"send", "spawn", "history", "list_sessions", "resolve", "invoke"} <= set(public)
    for name in public:
        if name == "aclose":
            continue
        asynchronous = inspect.signature(getattr(AsyncSessionGateClient, name))
        blocking = inspect.signature(getattr(SessionGateClient, name))
        assert asynchronous == blocking, name
    assert inspect.signature(AsyncSessionGateClient) == inspect.signature(SessionGateClient)


def test_client_reports_an_unreachable_gateway() -> None:
    with (
        SessionGateClient("http://127.0.0.1:9", "t") as client,
        pytest.raises(GatewayUnreachableError) as info,
    ):
        client.list_sessions()
    assert info.value.retryable


async def test_shutdown_lets_in_flight_runs_finish(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    async with upstream(webhook_app(0.5)) as fake:
        config = webhook_config(config_factory, fake.url)
        async with serve(config) as gw, AsyncSessionGateClient(gw.url, gw.token) as client:
            accepted = await client.send("agent:slow:main", "finish me", timeout_seconds=0)
        store = await SqliteSessionStore.open(tmp_path / "state.db")
        run = await store.find_run(accepted["runId"])
        history = await store.history("agent:slow:main")
        await store.close()
    assert run is not None and run.status == "completed"
    assert [m.content for m in history] == ["finish me", "done: finish me"]


def start_serve(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "sessiongate", "serve", "--config", str(config)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_healthy(url: str, process: subprocess.Popen[str]) -> None:
    for _ in range(300):
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("serve did not become healthy")


def test_serve_generates_a_private_token_and_stops_on_sigterm(
    tmp_path: Path, isolated_state: Path
) -> None:
    port = free_port()
    config = tmp_path / "gw.json5"
    config.write_text(
        f"{{ gateway: {{ port: {port} }}, storage: {{ url: 'sqlite:///{tmp_path}/s.db' }} }}"
    )
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(isolated_state)}
    process = start_serve(config, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        token_file = isolated_state / "gateway.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert httpx.get(f"{url}/v1/sessions", timeout=5).status_code == 401
        headers = {"authorization": f"Bearer {token}"}
        body = {"tool": "sessions_send", "args": {"sessionKey": "main", "message": "hi"}}
        sent = httpx.post(f"{url}/tools/invoke", json=body, headers=headers, timeout=10)
        assert sent.json()["result"]["reply"] == "echo: hi"
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "sessiongate",
                "sessions",
                "history",
                "main",
                "--url",
                url,
                "--json",
            ],
            env={**env, "SESSIONGATE_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert '"echo: hi"' in cli.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "gateway.token" in out


def serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    """`sessiongate serve ARGS` expected to stop by itself (it cannot start)."""
    command = [sys.executable, "-m", "sessiongate", "serve", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    config = tmp_path / "gw.json5"
    config.write_text("{ gateway: { bind: 'all' } }")
    result = serve_once("--config", str(config))
    assert result.returncode == 2
    assert "gateway.auth.token" in result.stderr


def test_serve_on_a_busy_port_fails_readably(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = serve_once("--port", str(busy.getsockname()[1]))
    assert result.returncode == 1
    assert "GATEWAY_NOT_STARTED" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_an_unreachable_store_fails_readably(tmp_path: Path) -> None:
    config = tmp_path / "gw.json5"
    config.write_text(
        f"{{ storage: {{ url: 'postgresql://postgres@127.0.0.1:{free_port()}/x' }} }}"
    )
    result = serve_once("--config", str(config))
    assert result.returncode == 1
    assert "STORE_UNAVAILABLE" in result.stderr
    assert "Traceback" not in result.stderr
