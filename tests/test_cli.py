"""The `sessiongate` command as a user runs it: a real process, exit codes, --json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import sessiongate

INCIDENT = "agent:atlas:telegram:atlas:direct:6596143250"


def test_version() -> None:
    result = sessiongate("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("sessiongate ")


def test_validate_names_the_bad_path_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.json5"
    path.write_text('{ gateway: { sessions: { createOnMiss: "no" } } }', encoding="utf-8")
    result = sessiongate("config", "validate", str(path))
    assert result.returncode == 2
    assert "gateway.sessions.createOnMiss" in result.stderr
    assert 'expected boolean or "warn"' in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_refuses_an_unknown_tool_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "typo.json5"
    path.write_text('{ gateway: { tools: { allow: ["sessions_sned"] } } }', encoding="utf-8")
    result = sessiongate("config", "validate", str(path))
    assert result.returncode == 2
    assert "gateway.tools.allow: unknown tool 'sessions_sned'" in result.stderr
    assert "(did you mean 'sessions_send'?)" in result.stderr


def test_validate_json_prints_the_wire_form(tmp_path: Path) -> None:
    path = tmp_path / "bad.json5"
    path.write_text("{ gateway: { port: -1 } }", encoding="utf-8")
    result = sessiongate("config", "validate", str(path), "--json")
    assert result.returncode == 2
    body = json.loads(result.stdout)
    assert body["error"]["code"] == "CONFIG_INVALID"
    assert any(p.startswith("gateway.port") for p in body["error"]["details"]["problems"])


def test_validate_accepts_a_good_file_and_the_embedded_default(tmp_path: Path) -> None:
    path = tmp_path / "good.json5"
    path.write_text("{ gateway: { sessions: { createOnMiss: 'warn' } } }", encoding="utf-8")
    assert sessiongate("config", "validate", str(path)).returncode == 0
    assert sessiongate("config", "validate").returncode == 0


def test_schema_contains_create_on_miss() -> None:
    result = sessiongate("config", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "createOnMiss" in json.dumps(schema)


def test_sessions_list_and_show_read_the_configured_store(tmp_path: Path) -> None:
    config = tmp_path / "c.json5"
    config.write_text(f"{{ storage: {{ url: 'sqlite:///{tmp_path}/s.db' }} }}", encoding="utf-8")
    empty = sessiongate("sessions", "list", "--json", "-c", str(config))
    assert empty.returncode == 0
    assert json.loads(empty.stdout)["result"]["sessions"] == []
    missing = sessiongate("sessions", "show", "agent:atlas:main", "-c", str(config))
    assert missing.returncode == 1
    assert "SESSION_NOT_FOUND" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_bad_key_is_a_usage_error(tmp_path: Path) -> None:
    result = sessiongate("sessions", "show", "agent:at las:main")
    assert result.returncode == 2
    assert "INVALID_SESSION_KEY" in result.stderr


def test_demo_replays_both_modes() -> None:
    result = sessiongate("demo", "--json")
    assert result.returncode == 0
    permissive, strict = json.loads(result.stdout)["modes"]
    assert permissive["outcome"]["ok"] is True
    assert INCIDENT in permissive["atlasSessions"]
    assert "agent:atlas:main" in permissive["atlasSessions"]
    error = strict["outcome"]["error"]
    assert error["code"] == "SESSION_NOT_FOUND"
    assert error["details"]["requestedKey"] == INCIDENT
    assert error["details"]["suggestions"] == ["agent:atlas:main"]
    assert strict["atlasSessions"] == ["agent:atlas:main"]


def test_send_without_a_gateway_fails_readably(tmp_path: Path) -> None:
    result = sessiongate("send", "main", "hi", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "GATEWAY_UNREACHABLE" in result.stderr
    assert "sessiongate serve" in result.stderr
