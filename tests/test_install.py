"""The package as a user gets it: `python -m build` makes a wheel and an sdist holding the
templates and assets; the wheel, installed into an empty venv (not the source tree),
serves the embedded default, signs a browser in to /ui and answers the CLI — without
asyncpg, openai, the MCP SDK or cryptography. A config or a surface that needs an
extra names it in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import httpx
from packaging.version import Version

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "sessiongate"
UI_FILES = ("server/ui/templates", "server/ui/static")


def run(*command: str | Path, env: dict[str, str], timeout: float = 120, cwd: Path | None = None
        ) -> str:  # fmt: skip
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            env=env, timeout=timeout, cwd=cwd)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def ui_files() -> set[str]:
    """Every template and asset in the source tree, as a path inside the package."""
    return {
        str(path.relative_to(PACKAGE))
        for folder in UI_FILES
        for path in (PACKAGE / folder).iterdir()
        if path.is_file()
    }


def test_the_wheel_ships_every_template_and_asset() -> None:
    """The package-data globs match every file the page serves (checked without a build)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["sessiongate"]
    matched = {f for f in ui_files() if any(Path(f).match(g) for g in globs)}
    assert matched == ui_files()


def test_the_lower_bounds_file_matches_pyproject() -> None:
    """requirements-lower.txt pins exactly the lower bound of each runtime dependency."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime_extras = [
        requirement
        for extra, requirements in pyproject["optional-dependencies"].items()
        if extra not in ("all", "bench", "dev")
        for requirement in requirements
    ]
    declared = [*pyproject["dependencies"], *runtime_extras]
    bounds = {}
    for requirement in declared:
        found = re.match(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?>=([^,;\s]+)", requirement)
        assert found, f"{requirement}: every dependency has a lower bound"
        bounds[found[1].lower()] = found[3]
    lines = (ROOT / "requirements-lower.txt").read_text().splitlines()
    pins = [line.lower().split("==") for line in lines if line and not line.startswith("#")]
    pinned = dict(pins)
    assert len(pinned) == len(pins), "one line per package"
    assert pinned.keys() == bounds.keys()
    assert {n: Version(v) for n, v in pinned.items()} == {n: Version(v) for n, v in bounds.items()}


def build(out: Path, env: dict[str, str]) -> tuple[Path, Path]:
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, env=env, timeout=600)
    wheel, sdist = next(out.glob("sessiongate-*.whl")), next(out.glob("sessiongate-*.tar.gz"))
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = {n.removeprefix("sessiongate/") for n in archive.namelist()}
    with tarfile.open(sdist) as archive:
        in_sdist = {n.split("/src/sessiongate/", 1)[-1] for n in archive.getnames()}
    assert ui_files() <= in_wheel
    assert ui_files() <= in_sdist
    assert "py.typed" in in_wheel
    return wheel, sdist


def test_the_built_wheel_installs_serves_signs_in_and_sends(tmp_path: Path) -> None:
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    wheel, _ = build(tmp_path / "dist", env)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, cli = venv / "bin" / "python", venv / "bin" / "sessiongate"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "-c", ROOT / "requirements.lock", wheel, env=env, timeout=600)  # fmt: skip
    installed = json.loads(run(python, "-m", "pip", "list", "--format", "json", env=env))
    names = {p["name"].lower(): p["version"] for p in installed}
    assert not names.keys() & {"asyncpg", "openai", "matplotlib", "py-spy", "pytest"}
    assert not names.keys() & {"mcp", "mcp-types", "httpx2", "cryptography", "pyjwt"}
    where = run(python, "-c", "import sessiongate; print(sessiongate.__file__)", env=env,
                cwd=tmp_path)  # fmt: skip
    assert where.startswith(str(venv)), where  # the wheel's copy, not the source tree
    port = str(free_port())
    detached = run(cli, "serve", "--detach", "--port", port, env=env, cwd=tmp_path)
    assert "running in the background" in detached
    try:
        _use_the_installed_gateway(cli, port, names["sessiongate"], env, tmp_path)
    finally:
        run(cli, "stop", env=env, cwd=tmp_path)
    _extras_are_named(cli, port, env, tmp_path)


def _use_the_installed_gateway(
    cli: Path, port: str, version: str, env: dict[str, str], cwd: Path
) -> None:
    url = f"http://127.0.0.1:{port}"
    token = (cwd / "state" / "gateway.token").read_text().strip()
    assert run(cli, "--version", env=env, cwd=cwd).strip() == f"sessiongate {version}"
    with httpx.Client(base_url=url, timeout=30) as http:
        signed_in = http.post("/ui/signin", data={"token": token, "next": "/ui/"})
        assert signed_in.status_code == 303, signed_in.text
        overview = http.get("/ui/")
        assert overview.status_code == 200 and version in overview.text
        css = re.search(r'href="(/ui/static/[^"]+\.css)"', overview.text)
        assert css and http.get(css[1]).status_code == 200  # assets are package data
        status = http.get("/v1/status", headers={"authorization": f"Bearer {token}"})
        assert status.json()["result"]["version"] == version
        mcp = http.post("/mcp", json={}, headers={"authorization": f"Bearer {token}"})
        assert mcp.json()["error"]["code"] == "EXTRA_NOT_INSTALLED"
        assert "pip install 'sessiongate[mcp]'" in mcp.json()["error"]["message"]
    assert "echo: hi" in run(cli, "send", "main", "hi", env=env, cwd=cwd)
    stdio = subprocess.run([str(cli), "mcp"], capture_output=True, text=True, env=env,
                           stdin=subprocess.DEVNULL, timeout=60, cwd=cwd)  # fmt: skip
    assert (stdio.returncode, stdio.stdout) == (1, "")
    assert len(stdio.stderr.strip().splitlines()) == 1, stdio.stderr
    assert "pip install 'sessiongate[mcp]'" in stdio.stderr


def _extras_are_named(cli: Path, port: str, env: dict[str, str], tmp_path: Path) -> None:
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
