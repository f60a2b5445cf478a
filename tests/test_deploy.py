"""deploy/ checked statically (no container engine here): the systemd unit verifies and is
hardened, the compose file, its config and its environment agree, the image copies what exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sessiongate.config import load_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def env_example() -> dict[str, str]:
    lines = (DEPLOY / "env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (DEPLOY / "sessiongate.service").read_text()
    hardening = ["DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=sessiongate",
                 "NoNewPrivileges=yes", "SESSIONGATE_STATE_DIR=/var/lib/sessiongate"]  # fmt: skip
    assert all(setting in unit for setting in hardening)
    local = tmp_path / "sessiongate.service"
    executable = Path(sys.executable).with_name("sessiongate")
    local.write_text(unit.replace("/opt/sessiongate/bin/sessiongate", str(executable)))
    verify = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", str(local)],
                              capture_output=True, text=True)  # fmt: skip
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert exposure is not None and float(exposure.group(1)) <= 2.0, security.stdout[-500:]


def test_compose_config_and_environment_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    gateway, postgres = compose["services"]["sessiongate"], compose["services"]["postgres"]
    assert (DEPLOY / gateway["build"]["context"] / gateway["build"]["dockerfile"]).exists()
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    mounted = {v.split(":")[0]: v.split(":")[1] for v in gateway["volumes"] if v.startswith("./")}
    assert mounted == {"./config.container.json5": "/etc/sessiongate/config.json5"}
    env = env_example()
    text = (DEPLOY / "compose.yaml").read_text()
    assert set(re.findall(r"\$\{(\w+)", text)) == set(env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_config(DEPLOY / "config.container.json5")
    assert config.gateway.bind == "all" and config.gateway.auth.token == env["SESSIONGATE_TOKEN"]
    assert config.storage_url.startswith("postgresql://sessiongate:")
    assert "@postgres:5432/" in config.storage_url and "postgres" in postgres["image"]
    assert config.metrics.token == env["SESSIONGATE_METRICS_TOKEN"]


def test_the_image_copies_what_exists_and_serves_from_its_state_volume() -> None:
    containerfile = (DEPLOY / "Containerfile").read_text()
    root = DEPLOY.parent
    for line in containerfile.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, _ = line.split()[1:]
            assert all((root / s).exists() for s in sources), line
    assert "SESSIONGATE_STATE_DIR=/var/lib/sessiongate" in containerfile
    assert "USER sessiongate" in containerfile
    assert '".[all]"' in containerfile


def test_the_prometheus_example_scrapes_metrics_without_the_api_token() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    assert [job.get("authorization", {}).get("type") for job in scrape] == [None, "Bearer"]
