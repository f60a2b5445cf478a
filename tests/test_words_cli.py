"""The CLI's words, as a user meets them: real processes, one state folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import detach, free_port, records, sessiongate
from tests.helpers import write_cli_config as write_config


def test_config_and_port_pick_among_gateways_of_one_config_and_stop_is_honest(
    state: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "shared.json5", storage={"url": f"sqlite:///{tmp_path}/s.db"})
    first, second = free_port(), free_port()
    detach(state, "--config", str(config), "--port", str(first))
    detach(state, "--config", str(config), "--port", str(second), "--force")
    plain = sessiongate("status", state=state)
    assert plain.returncode == 2
    assert f"--config {config} --port {first}" in plain.stderr
    assert f"--config {config} --port {second}" in plain.stderr
    picked = sessiongate(
        "status", "--config", str(config), "--port", str(second), "--json", state=state
    )
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout)["result"]["url"] == f"http://127.0.0.1:{second}"
    sent = sessiongate("send", "main", "hi", "-c", str(config), "--port", str(second), state=state)
    assert sent.returncode == 0 and "echo: hi" in sent.stdout
    for port in (first, second):
        stopped = sessiongate("stop", "-c", str(config), "--port", str(port), state=state)
        assert stopped.returncode == 0 and f"stopped http://127.0.0.1:{port}" in stopped.stdout
    assert records(state) == []
    again = sessiongate("stop", "-c", str(config), "--port", str(first), state=state)
    assert again.returncode == 0
    assert again.stdout.startswith("nothing to stop: no gateway runs at")
    assert "serve" not in again.stdout + again.stderr  # it does not suggest starting one


def test_a_second_start_on_a_busy_port_prints_its_own_error_only(
    state: Path, tmp_path: Path
) -> None:
    port = free_port()
    started = detach(state, "--port", str(port))
    assert f"page http://127.0.0.1:{port}/ui (sign in with the token in {state}" in started.stdout
    [record] = records(state)
    for extra in ([], ["--detach"]):
        second = sessiongate("serve", "--port", str(port), "--force", *extra, state=state)
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert lines[0] == (
            f"error [GATEWAY_NOT_STARTED] could not serve on http://127.0.0.1:{port}: "
            f"sessiongate pid {record['pid']} listens there"
        )
        assert len(lines) == 2 and lines[1].startswith("hint:")
        assert second.stdout == ""
    sessiongate("stop", "--port", str(port), state=state)


def test_config_errors_name_file_line_and_column_and_validate_checks_extras(
    state: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json5"
    broken.write_text("{\n  gateway: {\n    port: ,\n  },\n}\n")
    checked = sessiongate("config", "validate", "--config", str(broken), state=state)
    assert checked.returncode == 2
    assert f"Invalid config at {broken}:3:11" in checked.stderr
    assert "<string>" not in checked.stderr
    needs_postgres = tmp_path / "pg.json5"
    needs_postgres.write_text("{ storage: { url: 'postgresql://127.0.0.1/x' } }")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['asyncpg'] = None\n")
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(state), "PYTHONPATH": str(blocker)}
    command = [sys.executable, "-m", "sessiongate", "config", "validate", "-c", str(needs_postgres)]
    missing = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert missing.returncode == 2
    assert "[EXTRA_NOT_INSTALLED]" in missing.stderr
    assert "storage.url postgresql://… needs the 'postgres' extra" in missing.stderr
    assert "pip install 'sessiongate[postgres]'" in missing.stderr
    assert sessiongate("config", "validate", "-c", str(needs_postgres), state=state).returncode == 0


def test_sessions_list_is_newest_first_and_never_wraps_a_key(state: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.json5", storage={"url": f"sqlite:///{tmp_path}/s.db"})
    keys = [f"agent:atlas:telegram:atlas:direct:65961432{n}" for n in range(3)]
    for key in keys:
        created = sessiongate("sessions", "create", key, "-c", str(config), state=state)
        assert created.returncode == 0, created.stderr
    listed = sessiongate("sessions", "list", "-c", str(config), state=state, columns=80)
    assert listed.returncode == 0, listed.stderr
    shown = [
        k for line in listed.stdout.splitlines() for k in [*keys, "agent:atlas:main"] if k in line
    ]
    assert shown[:3] == keys[::-1]  # whole keys, on one line each, newest first
    wide = sessiongate("sessions", "list", "-c", str(config), "--wide", state=state, columns=60)
    assert "created (UTC)" in wide.stdout and all(k in wide.stdout for k in keys)
    shown_one = sessiongate("sessions", "show", keys[0], "-c", str(config), state=state)
    assert "None" not in shown_one.stdout and "label" not in shown_one.stdout


def test_the_documented_rollout_edits_an_init_config_without_overwriting_it(state: Path) -> None:
    """docs/gateway/configuration-reference.md, "Rolling out false safely", steps 1 and 4."""
    assert sessiongate("init", state=state).returncode == 0
    config = state / "config.json5"
    assert sessiongate("init", state=state).returncode != 0  # never overwritten
    for old, new in (("true", '"warn"'), ('"warn"', "false")):
        text = config.read_text()
        assert text.count(f"createOnMiss: {old},") == 1
        config.write_text(text.replace(f"createOnMiss: {old},", f"createOnMiss: {new},"))
        checked = sessiongate("config", "validate", "--json", state=state)
        assert checked.returncode == 0, checked.stderr
        status = sessiongate("status", "--json", state=state)
        assert json.loads(status.stdout)["result"]["running"] is False
    stopped = sessiongate("stop", state=state)
    assert stopped.returncode == 0 and "nothing to stop" in stopped.stdout


def test_doctor_lists_phantoms_newest_first(state: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.json5", storage={"url": f"sqlite:///{tmp_path}/s.db"})
    port = json.loads(config.read_text())["gateway"]["port"]
    detach(state, "--config", str(config))
    keys = [f"agent:atlas:telegram:atlas:direct:65961432{n}" for n in range(3)]
    for key in keys:  # addressed, so created by addressing: phantoms under dmScope main
        sent = sessiongate("send", key, "hi", "-c", str(config), state=state)
        assert sent.returncode == 0, sent.stderr
    sessiongate("stop", "-c", str(config), "--port", str(port), state=state)
    doctor = sessiongate("doctor", "-c", str(config), state=state, columns=100)
    numbered = [line for line in doctor.stdout.splitlines() if line.split(".")[0].isdigit()]
    assert [line.split()[-1] for line in numbered] == keys[::-1], doctor.stdout
