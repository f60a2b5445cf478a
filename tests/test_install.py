"""The base install: `pip install .` into an empty venv serves the embedded default,
without asyncpg, openai, the MCP SDK (nor cryptography), matplotlib or py-spy; a config
or a surface that needs an extra names it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str | Path, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            env=env, timeout=timeout)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_the_base_install_serves_sqlite_without_the_extras(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, cli = venv / "bin" / "python", venv / "bin" / "sessiongate"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "-c", ROOT / "requirements.lock", ROOT, env=env, timeout=600)  # fmt: skip
    installed = run(python, "-m", "pip", "list", "--format", "json", env=env)
    names = {p["name"].lower() for p in json.loads(installed)}
    assert not names & {"asyncpg", "openai", "matplotlib", "py-spy", "pytest"}
    assert not names & {"mcp", "mcp-types", "httpx2", "cryptography", "pyjwt", "jsonschema"}
    port = str(free_port())
    assert "running in the background" in run(cli, "serve", "--detach", "--port", port, env=env)
    try:
        assert "echo: hi" in run(cli, "send", "main", "hi", env=env)
        token = (tmp_path / "state" / "gateway.token").read_text().strip()
        mcp = httpx.post(f"http://127.0.0.1:{port}/mcp", json={}, timeout=30,
                         headers={"authorization": f"Bearer {token}"})  # fmt: skip
        assert mcp.json()["error"]["code"] == "EXTRA_NOT_INSTALLED"
        assert "pip install 'sessiongate[mcp]'" in mcp.json()["error"]["message"]
        stdio = subprocess.run([str(cli), "mcp"], capture_output=True, text=True, env=env,
                               stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip
        assert stdio.returncode == 1
        assert stdio.stdout == ""
        assert stdio.stderr.strip().count("\n") == 0, stdio.stderr  # one line
        assert "pip install 'sessiongate[mcp]'" in stdio.stderr
    finally:
        run(cli, "stop", env=env)
    postgres = tmp_path / "pg.json5"
    postgres.write_text('{ storage: { url: "postgresql://postgres@127.0.0.1/test" } }')
    llm = tmp_path / "llm.json5"
    llm.write_text(json.dumps({
        "models": {"providers": {"local": {"baseUrl": "http://127.0.0.1:9/v1"}}},
        "agents": {"list": [{"id": "atlas", "model": "local/m"}]},
    }))  # fmt: skip
    for config, extra in ((postgres, "postgres"), (llm, "llm")):
        refused = subprocess.run([str(cli), "serve", "--config", str(config), "--port", port],
                                 capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert refused.returncode == 2
        assert "[EXTRA_NOT_INSTALLED]" in refused.stderr
        assert f"pip install 'sessiongate[{extra}]'" in refused.stderr
        assert "Traceback" not in refused.stderr
