"""Config: JSON5 files, ${ENV}, strict validation reporting every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessiongate.config import SessionGateConfig, load_config, parse_config
from sessiongate.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.json5"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_the_embedded_default(isolated_state: Path) -> None:
    config = load_config()
    assert [a.id for a in config.agents.entries] == ["atlas", "peggy"]
    assert config.default_agent.id == "atlas"
    assert config.gateway.sessions.create_on_miss is True
    assert config.storage_url == f"sqlite:///{isolated_state / 'state.db'}"


def test_json5_with_comments_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SG_TEST_TOKEN", "a-token-of-sufficient-length")
    path = write(
        tmp_path,
        """{
          // strict, with a rule for peggy
          gateway: { auth: { token: "${SG_TEST_TOKEN}" },
                     sessions: { createOnMiss: false,
                                 rules: [{ match: "agent:peggy:*", createOnMiss: "warn" }] } },
          storage: { url: "sqlite:///relative.db" },
        }""",
    )
    config = load_config(path)
    assert config.gateway.auth.token == "a-token-of-sufficient-length"
    assert config.gateway.sessions.create_on_miss is False
    assert config.gateway.sessions.rules[0].create_on_miss == "warn"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """{ gateway: { sessions: { createOnMiss: "no" }, port: "x", extra: 1 },
             storage: { url: "mysql://nope" }, session: { dmScope: "sometimes" } }""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.message
    assert message.startswith(f"Invalid config at {path}:\n- ")
    assert '- gateway.sessions.createOnMiss: expected boolean or "warn" (got "no")' in message
    for dotted in ("gateway.port", "gateway.extra", "storage.url", "session.dmScope"):
        assert f"- {dotted}:" in message
    assert len(info.value.details["problems"]) == 5


def test_missing_env_variable_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '{ gateway: { auth: { token: "${SG_SURELY_UNSET_VAR}" } } }')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "SG_SURELY_UNSET_VAR" in info.value.message
    assert "gateway.auth.token" in info.value.message


def test_unknown_model_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"agents": {"list": [{"id": "atlas", "model": "nowhere/gpt"}]}}, "x.json5")
    assert "agents.list.0.model" in info.value.message


def test_syntax_errors_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="syntax"):
        load_config(write(tmp_path, "{ gateway: "))
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.json5")


def test_schema_describes_create_on_miss() -> None:
    schema = SessionGateConfig.model_json_schema(by_alias=True)
    text = str(schema)
    assert "createOnMiss" in text and "dmScope" in text


def test_the_tool_names_the_config_checks_are_the_registry() -> None:
    from sessiongate.tool_names import DEFAULT_TOOLS, ToolName
    from sessiongate.tools import TOOLS

    assert set(TOOLS) == set(ToolName)
    assert parse_config({}, "x").gateway.tools.allow == [name.value for name in DEFAULT_TOOLS]
    assert "sessions_delete" not in parse_config({}, "x").gateway.tools.allow  # off by default
    with pytest.raises(ConfigError, match="did you mean 'sessions_list'"):
        parse_config({"gateway": {"tools": {"allow": ["session_list"]}}}, "x.json5")
