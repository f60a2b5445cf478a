"""Operating a gateway as a user does: serve, status, stop, the CLI finding its gateway,
failures that explain themselves, logs, metrics, init. Real processes throughout."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.helpers import CLI_TOKEN as TOKEN
from tests.helpers import detach, free_port, records, sessiongate
from tests.helpers import write_cli_config as write_config

# ---------------------------------------------------------------- finding the gateway


def test_the_cli_reaches_the_gateway_its_config_names(state: Path, tmp_path: Path) -> None:
    """Two gateways from one state folder: --config picks one, -v says which and why."""
    one = write_config(tmp_path / "one.json5", storage={"url": f"sqlite:///{tmp_path}/one.db"})
    two = write_config(tmp_path / "two.json5", storage={"url": f"sqlite:///{tmp_path}/two.db"})
    detach(state, "--config", str(one))
    detach(state, "--config", str(two))
    sent = sessiongate("send", "agent:peggy:main", "hi", "--config", str(two), "-v", state=state)
    assert sent.returncode == 0, sent.stderr
    port_two = json.loads(two.read_text())["gateway"]["port"]
    assert (
        f"gateway http://127.0.0.1:{port_two} (from {two}: gateway.port {port_two}" in sent.stderr
    )
    status_two = sessiongate("status", "--config", str(two), "--json", state=state)
    assert json.loads(status_two.stdout)["result"]["store"] == f"sqlite:///{tmp_path}/two.db"
    history = sessiongate("sessions", "history", "agent:peggy:main", "-c", str(two), state=state)
    assert "echo: hi" in history.stdout
    history_one = sessiongate(
        "sessions", "history", "agent:peggy:main", "-c", str(one), state=state
    )
    assert "echo: hi" not in history_one.stdout
    ambiguous = sessiongate("status", state=state)
    assert ambiguous.returncode == 2
    assert "2 gateways run from this state folder" in ambiguous.stderr
    assert "pick one with --config and --port (or --url)" in ambiguous.stderr
    for config in (one, two):
        assert sessiongate("stop", "--config", str(config), state=state).returncode == 0
    assert records(state) == []


def test_serve_records_what_it_runs_and_status_stop_use_it(state: Path) -> None:
    port = free_port()
    started = detach(state, "--port", str(port))
    assert f"running in the background on http://127.0.0.1:{port}" in started.stdout
    [record] = records(state)
    path = state / "run" / f"gateway-{port}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert record["url"] == f"http://127.0.0.1:{port}"
    assert record["configPath"] is None and record["store"].startswith("sqlite:///")
    assert {"pid", "startedAt", "version"} <= set(record)
    shown = sessiongate("status", "-v", state=state)  # no --config: the run record
    assert shown.returncode == 0, shown.stderr
    assert f"running       http://127.0.0.1:{port} (pid {record['pid']}" in shown.stdout
    assert "createOnMiss  atlas=true  peggy=true" in shown.stdout
    assert f"(from run record {path}" in shown.stderr
    stopped = sessiongate("stop", state=state)
    assert stopped.returncode == 0 and f"(pid {record['pid']})" in stopped.stdout
    assert not path.exists()  # removed on a clean exit
    after = sessiongate("status", "--json", state=state)
    assert after.returncode == 1
    assert json.loads(after.stdout)["result"]["running"] is False


def test_a_crashed_gateway_leaves_a_stale_record_that_status_reports(state: Path) -> None:
    detach(state, "--port", str(free_port()))
    [record] = records(state)
    os.kill(record["pid"], signal.SIGKILL)
    shown = sessiongate("status", state=state)
    assert shown.returncode == 1
    assert f"stale run record of pid {record['pid']}" in shown.stderr
    assert "not running" in shown.stdout
    assert records(state) == []


def test_status_wait_blocks_until_the_gateway_is_ready(state: Path) -> None:
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(state)}
    port = str(free_port())
    command = [sys.executable, "-m", "sessiongate", "serve", "--port", port]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        waited = sessiongate("status", "--wait", "60", "--url", f"http://127.0.0.1:{port}",
                             state=state)  # fmt: skip
        assert waited.returncode == 0, waited.stderr
        assert "running" in waited.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert out.decode().count("listening on") == 1  # the banner, once bound


def test_a_second_gateway_on_a_served_sqlite_store_is_refused(state: Path) -> None:
    detach(state, "--port", str(free_port()))
    second = sessiongate("serve", "--port", str(free_port()), state=state)
    assert second.returncode == 1
    assert (
        "[CONFLICT]" in second.stderr and "is already served by http://127.0.0.1:" in second.stderr
    )
    assert "--force" in second.stderr
    assert second.stdout == ""
    forced = detach(state, "--port", str(free_port()), "--force")
    assert "running in the background" in forced.stdout
    assert len(records(state)) == 2


# ---------------------------------------------------------------- ports and the banner


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_rejects_a_port_outside_1_to_65535_before_printing(state: Path, port: str) -> None:
    result = sessiongate("serve", "--port", port, state=state)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Invalid value for '--port'" in result.stderr


def test_a_taken_port_prints_no_banner(state: Path, tmp_path: Path) -> None:
    port = free_port()
    detach(state, "--port", str(port))
    other = write_config(tmp_path / "other.json5", storage={"url": f"sqlite:///{tmp_path}/o.db"})
    busy = sessiongate("serve", "--config", str(other), "--port", str(port), state=state)
    assert busy.returncode == 1
    assert "GATEWAY_NOT_STARTED" in busy.stderr
    assert "listening" not in busy.stdout and "token" not in busy.stdout


# ---------------------------------------------------------------- failures explain themselves


def test_a_failed_run_prints_its_reason_and_exits_1_with_or_without_json(
    state: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "llm.json5",
        models={"providers": {"down": {"baseUrl": "http://127.0.0.1:9/v1", "timeoutSeconds": 5}}},
        agents={"list": [{"id": "atlas", "default": True, "model": "down/some-model"}]},
    )
    detach(state, "--config", str(config))
    plain = sessiongate("send", "main", "hi", "-c", str(config), state=state)
    assert plain.returncode == 1
    assert "error agent:atlas:main run" in plain.stdout
    assert "[RUN_FAILED] APIConnectionError" in plain.stderr
    as_json = sessiongate("send", "main", "hi", "-c", str(config), "--json", state=state)
    assert as_json.returncode == 1
    result = json.loads(as_json.stdout)["result"]
    assert result["status"] == "error" and result["error"]["code"] == "RUN_FAILED"


def test_agent_not_found_is_a_session_not_found_for_python_callers(state: Path) -> None:
    from sessiongate.client import SessionGateClient
    from sessiongate.errors import AgentNotFoundError, SessionNotFoundError

    port = free_port()
    detach(state, "--port", str(port))
    token = (state / "gateway.token").read_text().strip()
    client = SessionGateClient(f"http://127.0.0.1:{port}", token)
    with client, pytest.raises(SessionNotFoundError) as info:  # the README's except clause
        client.send("agent:atlsa:main", "hi", must_exist=True)
    assert isinstance(info.value, AgentNotFoundError)
    assert info.value.code == "AGENT_NOT_FOUND"
    typo = sessiongate("send", "agent:atlsa:main", "hi", state=state)
    assert typo.returncode == 1 and "[AGENT_NOT_FOUND]" in typo.stderr


def test_config_errors_list_every_problem_with_full_patterns_and_suggestions(
    state: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json5"
    bad.write_text(json.dumps({
        "gateway": {"port": 18789, "sesions": {}},
        "agents": {"list": [
            {"id": "Atlas!", "model": "gpt-4", "defualt": True},
            {"id": "peggy", "model": "nope/x"},
            {"id": "peggy"},
        ]},
    }))  # fmt: skip
    result = sessiongate("config", "validate", str(bad), state=state)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    expected = [
        "- gateway.sesions: unknown key (did you mean 'sessions'?)",
        '- agents.list.0.id: agent id must match [a-z0-9][a-z0-9_-]{0,63} (got "Atlas!")',
        "- agents.list.0.defualt: unknown key (did you mean 'default'?)",
        "- agents.list: duplicate agent id 'peggy' (entries 1, 2)",
        "- agents.list.0.model: unknown model 'gpt-4': use 'echo', 'webhook' or "
        "'<provider>/<model>' with a provider from models.providers (none configured)",
        "- agents.list.1.model: unknown model 'nope/x': use 'echo', 'webhook' or "
        "'<provider>/<model>' with a provider from models.providers (none configured)",
    ]
    assert [line for line in lines if line.startswith("- ")] == expected
    assert lines[-1].startswith("hint: fix the lines above")
    as_json = sessiongate("config", "validate", str(bad), "--json", state=state)
    assert len(json.loads(as_json.stdout)["error"]["details"]["problems"]) == 6


def test_a_one_line_config_error_has_no_stray_hint(state: Path, tmp_path: Path) -> None:
    public = tmp_path / "public.json5"
    public.write_text(f'{{ gateway: {{ bind: "all", port: {free_port()} }} }}')
    result = sessiongate("serve", "--config", str(public), state=state)
    assert result.returncode == 2
    assert "needs gateway.auth.token" in result.stderr
    assert "lines above" not in result.stderr


def test_config_validate_names_the_file_it_read(state: Path) -> None:
    embedded = sessiongate("config", "validate", state=state)
    assert "embedded default (no config file)" in embedded.stdout
    (state / "config.json5").write_text("{ gateway: { port: 28000 } }")
    read = sessiongate("config", "validate", state=state)
    assert read.returncode == 0 and f"ok {state / 'config.json5'}:" in read.stdout


def test_an_invalid_key_error_numbers_segments_like_its_details(state: Path) -> None:
    from sessiongate.errors import InvalidSessionKeyError
    from sessiongate.keys import parse_session_key

    with pytest.raises(InvalidSessionKeyError) as info:
        parse_session_key("agent:Bad Id:main")
    assert f"segment {info.value.details['segment']}:" in info.value.message


def test_doctor_never_truncates_a_key_at_80_columns(state: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "d.json5", storage={"url": f"sqlite:///{tmp_path}/d.db"})
    detach(state, "--config", str(config))
    phantom = "agent:atlas:telegram:atlas:direct:6596143250"
    for key in ("agent:atlas:main", phantom):
        assert sessiongate("send", key, "hi", "-c", str(config), state=state).returncode == 0
    report = sessiongate("doctor", "-c", str(config), state=state, columns=80)
    assert report.returncode == 1
    assert "…" not in report.stdout
    assert f"1. phantom {phantom}" in report.stdout.splitlines()
    assert "reading sqlite:///" in report.stderr and "directly" in report.stderr


# ---------------------------------------------------------------- logs and metrics


def test_one_json_access_line_per_request_with_its_request_id(state: Path) -> None:
    port = free_port()
    detach(state, "--port", str(port), "--log-format", "json")
    response = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    fresh = httpx.get(f"http://127.0.0.1:{port}/v1/sessions")
    assert fresh.status_code == 401 and len(fresh.headers["x-request-id"]) == 16
    sessiongate("stop", state=state)
    lines = [json.loads(line) for line in (state / "gateway.log").read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    access = [line for line in lines if line.get("event") == "request"]
    assert {
        "method": "GET",
        "path": "/healthz",
        "status": 200,
        "request_id": "abc-123",
    }.items() <= (access[0].items())
    assert access[1]["status"] == 401
    assert access[1]["request_id"] == fresh.headers["x-request-id"]
    assert all(isinstance(line["duration_ms"], float) for line in access)
    for line in access:  # ISO 8601 in UTC with microseconds, and the level
        stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
        assert stamp.tzinfo == UTC and len(line["timestamp"]) == 27
        assert line["level"] == "info"


def test_metrics_are_open_on_loopback_or_need_the_scrape_token(state: Path, tmp_path: Path) -> None:
    port = free_port()
    detach(state, "--port", str(port))
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
    sessiongate("stop", state=state)
    scrape = "prometheus-scrape-token-0123"
    config = write_config(tmp_path / "m.json5", metrics={"token": scrape})
    detach(state, "--config", str(config))
    url = f"http://127.0.0.1:{json.loads(config.read_text())['gateway']['port']}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": f"Bearer {scrape}"}).status_code == 200
    scraped = httpx.get(url, headers={"authorization": f"Bearer {TOKEN}"})
    assert "sessiongate_resolutions" in scraped.text


# ---------------------------------------------------------------- init


def test_init_writes_a_commented_config_that_validates_and_a_private_token(state: Path) -> None:
    result = sessiongate("init", state=state)
    assert result.returncode == 0, result.stderr
    config = state / "config.json5"
    assert config.read_text().startswith("// sessiongate configuration")
    assert stat.S_IMODE((state / "gateway.token").stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert sessiongate("config", "validate", state=state).returncode == 0
    again = sessiongate("init", state=state)
    assert again.returncode == 1 and "--force" in again.stderr


# ---------------------------------------------------------------- the README tour


def readme_tour() -> str:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## A 5-minute tour", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_the_readme_tour_works_pasted_as_one_block(state: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    (state / "config.json5").write_text(f"{{ gateway: {{ port: {free_port()} }} }}")
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(state), "COLUMNS": "200"}
    result = subprocess.run(["bash", "-c", readme_tour()], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "running in the background on http://127.0.0.1:" in output
    assert "createOnMiss  atlas=true  peggy=true" in output
    assert "echo: hello" in output
    assert "[SESSION_NOT_FOUND]" in output and "did you mean agent:atlas:main?" in output
    assert "accepted agent:peggy:subagent:" in output
    assert "stopped http://127.0.0.1:" in output
    assert records(state) == []


def test_a_warned_audit_line_carries_the_lint_and_the_suggestion(
    state: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "warn.json5",
        gateway={"port": free_port(), "auth": {"token": TOKEN},
                 "sessions": {"createOnMiss": "warn"}},
        audit={"path": str(tmp_path / "audit.jsonl")},
    )  # fmt: skip
    detach(state, "--config", str(config))
    phantom = "agent:atlas:telegram:atlas:direct:6596143250"
    sent = sessiongate("send", phantom, "hi", "-c", str(config), state=state)
    assert sent.returncode == 0 and "warning" in sent.stderr
    sessiongate("stop", "-c", str(config), state=state)  # flushes the audit
    tail = sessiongate("audit", "tail", "--json", "-c", str(config), state=state)
    [warned] = [json.loads(line) for line in tail.stdout.splitlines() if '"warned"' in line]
    assert warned["suggestions"] == ["agent:atlas:main"]
    assert warned["lint"] and "dmScope=main" in warned["lint"][0]
