"""Real `sessiongate serve` processes for multi-process and crash tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "multi-process-test-token-0123"


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
                                      "auth": {"token": TOKEN}}}  # fmt: skip
        self.config_path = workdir / f"{name}.json5"
        self.config_path.write_text(json.dumps(data))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {TOKEN}"}

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
