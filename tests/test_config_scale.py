"""Config and errors at scale: bounded suggestions, no echoed secrets, many agents and rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sessiongate.config import parse_config
from sessiongate.errors import ConfigError
from sessiongate.server.app import run_gateway


def many_agents(tmp_path: Path, count: int, rules: int = 0) -> dict[str, Any]:
    agents = [{"id": "atlas", "default": True}] + [{"id": f"worker-{i}"} for i in range(count)]
    return {
        "storage": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
        "gateway": {
            "sessions": {
                "rules": [
                    {"match": f"agent:worker-{i}:*", "createOnMiss": False} for i in range(rules)
                ]
            }
        },
        "agents": {"list": agents},
    }


def test_a_too_short_token_is_refused_without_echoing_it() -> None:
    secret = "hunter2-short"
    with pytest.raises(ConfigError) as caught:
        parse_config({"gateway": {"auth": {"token": secret}}}, "test")
    assert "gateway.auth.token" in caught.value.message
    assert secret not in caught.value.message
    assert secret not in str(caught.value.to_wire())


def test_a_bad_provider_key_is_not_echoed() -> None:
    data = {"models": {"providers": {"p": {"baseUrl": "http://x", "apiKey": 12345}}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "test")
    assert "apiKey" in caught.value.message and "12345" not in caught.value.message


def test_duplicate_agents_are_still_found_among_thousands(tmp_path: Path) -> None:
    data = many_agents(tmp_path, 5000)
    data["agents"]["list"].append({"id": "worker-17"})
    with pytest.raises(ConfigError, match=r"duplicate agent id 'worker-17' \(entries 18, 5001\)"):
        parse_config(data, "test")


async def test_agent_not_found_names_the_closest_few_not_every_agent(tmp_path: Path) -> None:
    config = parse_config(many_agents(tmp_path, 2000, rules=100), "test")
    async with run_gateway(config, "t" * 24) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(headers=headers) as client:
            args = {"sessionKey": "agent:atlsa:main", "message": "hi"}
            response = await client.post(
                f"{gw.url}/tools/invoke", json={"tool": "sessions_send", "args": args}
            )
            assert response.status_code == 404
            error = response.json()["error"]
            assert error["code"] == "AGENT_NOT_FOUND"
            assert error["message"] == "no agent 'atlsa' in agents.list"
            assert error["details"]["suggestions"] == ["agent:atlas:main"]
            assert len(response.content) < 2000
            args = {"sessionKey": "agent:worker-1999:main", "message": "hi"}
            sent = await client.post(
                f"{gw.url}/tools/invoke", json={"tool": "sessions_send", "args": args}
            )
            assert sent.json()["result"]["status"] == "ok"  # its main exists from start-up
