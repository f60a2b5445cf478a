"""The gateway under attack: a `sessiongate serve` process, its memory, its shed counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks._common import LOG_PATH, TOKEN, free_port, rss_mib

BUDGETS_OFF = {
    "headerTimeoutSeconds": 300,
    "bodyTimeoutSeconds": 600,
    "keepAliveTimeoutSeconds": 300,
    "connectTimeoutSeconds": 300,
    "maxConnections": 1_000_000,
    "maxConnectionsPerClient": 1_000_000,
    "maxInFlightPerConnection": 10_000,
    "maxQueuedBytesPerConnection": 1 << 40,
}


@dataclass
class Target:
    url: str
    pid: int

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws"

    def rss(self) -> float:
        return rss_mib(self.pid)

    def open_fds(self) -> int:
        return sum(1 for _ in Path(f"/proc/{self.pid}/fd").iterdir())

    async def shed(self) -> dict[str, int]:
        """sessiongate_connections_shed_total by reason."""
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        found = {}
        for line in text.splitlines():
            if line.startswith("sessiongate_connections_shed_total{"):
                reason = line.split('"')[1]
                found[reason] = int(float(line.rsplit(" ", 1)[1]))
        return found


def _config(tmp: Path, port: int, budgets: bool, extra: dict[str, Any]) -> Path:
    extra = dict(extra)
    gateway: dict[str, Any] = {**extra.pop("gateway", {}), "port": port, "auth": {"token": TOKEN}}
    if not budgets:
        gateway["limits"] = BUDGETS_OFF
    config = {
        "gateway": gateway,
        "storage": {"url": f"sqlite:///{tmp / f'state-{port}.db'}"},
        "audit": {"path": str(tmp / f"audit-{port}.jsonl")},
        **extra,
    }
    path = tmp / f"abuse-{port}.json5"
    path.write_text(json.dumps(config))
    return path


def _limit_fds(nofile: int | None) -> Callable[[], None] | None:
    if nofile is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))


@contextlib.asynccontextmanager
async def gateway(
    tmp: Path, *, budgets: bool = True, nofile: int | None = None, **extra: Any
) -> AsyncIterator[Target]:
    """A gateway process (echo agents atlas and peggy; `extra` top-level config sections)."""
    port = free_port()
    path = _config(tmp, port, budgets, extra)
    command = [sys.executable, "-m", "sessiongate", "serve", "--config", str(path)]
    log = LOG_PATH.open("ab")
    state = tmp / f"state-dir-{port}"  # a private state folder of its own (serve checks it)
    state.mkdir(mode=0o700)
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_limit_fds(nofile), env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _until_healthy(url)
        yield Target(url, proc.pid)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        proc.kill()
        log.close()


async def _until_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the gateway at {url} did not start; see {LOG_PATH}")


class PeakMemory:
    """Samples a process's RSS every 50 ms while running."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.peak = target.rss()
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, self.target.rss())
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> PeakMemory:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def legitimate_sends(target: Target, stop: asyncio.Event) -> tuple[int, int]:
    """A legitimate client sending one message every 100 ms until `stop`: (ok, failed)."""
    ok = failed = 0
    headers = {"authorization": f"Bearer {TOKEN}"}
    body = {"tool": "sessions_send", "args": {"sessionKey": "main", "message": "legit"}}
    async with httpx.AsyncClient(headers=headers, timeout=5) as client:
        while not stop.is_set():
            try:
                response = await client.post(f"{target.url}/tools/invoke", json=body)
                success = response.status_code == 200 and response.json()["ok"]
            except (httpx.HTTPError, ValueError):
                success = False
            ok, failed = ok + success, failed + (not success)
            await asyncio.sleep(0.1)
    return ok, failed
