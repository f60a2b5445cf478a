"""One policy fact, four reports: `/v1/status`, `sessiongate status --json`, the serve banner
and the page's overview say, for every agent, what the resolver then does with a missing key."""

from __future__ import annotations

import fnmatch
import html
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessiongate.cli_gateway import policy_lines
from sessiongate.config import parse_config
from sessiongate.errors import SessionNotFoundError
from sessiongate.keys import main_key
from sessiongate.metrics import GatewayMetrics
from sessiongate.policy import effective_for
from sessiongate.resolver import Caller, Resolver
from sessiongate.store import MemorySessionStore
from tests.helpers import free_port

TOKEN = "policy-facts-test-token-0123456789"
RULES = [
    {"match": "agent:atlas:*", "createOnMiss": False},  # the case: global true
    {"match": "agent:peggy:cron:*", "createOnMiss": True},
    {"match": "*:direct:vip-*", "createOnMiss": "warn"},
    {"match": "agent:rex:main", "createOnMiss": False},
    {"match": "agent:[r]ex:cron:*", "createOnMiss": "warn"},
]


def _config_data(tmp_path: Path) -> dict[str, Any]:
    return {
        "gateway": {"port": free_port(), "auth": {"token": TOKEN},
                    "sessions": {"createOnMiss": True, "rules": RULES}},
        "session": {"dmScope": "per-peer"},
        "storage": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
        "agents": {"list": [{"id": "atlas", "default": True},
                            {"id": "peggy", "sessions": {"createOnMiss": False}},
                            {"id": "rex", "sessions": {"createOnMiss": "warn"}},
                            {"id": "zed"}]},
    }  # fmt: skip


def _missing_keys(agent: str, default: bool) -> list[str]:
    rests = ("cron:nightly", "direct:vip-1", "direct:plain-1", f"subagent:{uuid.uuid4()}")
    keys = [f"agent:{agent}:{rest}" for rest in rests]
    return [*keys, f"hook:{uuid.uuid4()}"] if default else keys


def _predicted(policy: dict[str, Any], key: str) -> bool | str:
    """What the reported policy says the resolver does with missing `key`: first rule wins."""
    for rule in policy["rules"]:
        if fnmatch.fnmatchcase(key, rule["match"].lower()):
            return rule["createOnMiss"]  # type: ignore[no-any-return]
    return policy["otherKeys"]["createOnMiss"]  # type: ignore[no-any-return]


def _cli(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(state), "COLUMNS": "250"}
    command = [sys.executable, "-m", "sessiongate", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, env=env)


def _page_rows(page: str) -> dict[str, dict[str, Any]]:
    rows = {}
    for agent, body in re.findall(r'<tr data-agent="([^"]+)">(.*?)</tr>', page, re.DOTALL):
        cells = re.findall(r"<td>(.*?)</td>", body, re.DOTALL)
        pills = re.findall(r'<span class="pill mode-[^"]+">([^<]+)</span>', body)
        rows[agent] = {
            "main": pills[0],
            "decidedBy": html.unescape(re.sub(r"<[^>]+>", "", cells[2])),
            "rules": _rule_cells(cells[3]),
            "other": pills[1],
        }
    return rows


def _rule_cells(cell: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<code>([^<]*→[^<]*)</code>", cell)]


def _mode(value: bool | str) -> str:
    return str(value).lower()


async def _resolver_on_main(config_data: dict[str, Any], agent: str) -> bool | str:
    """What the resolver does when the agent's main key is missing (an empty store)."""
    config = parse_config(config_data, "test")
    resolver = Resolver(config, MemorySessionStore(), GatewayMetrics())
    try:
        resolution = await resolver.resolve(main_key(agent), Caller())
    except SessionNotFoundError:
        return False
    return "warn" if resolution.decision == "warned" else True


async def test_every_report_says_what_the_resolver_does(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    data = _config_data(tmp_path)
    config_path = tmp_path / "config.json5"
    config_path.write_text(json.dumps(data))
    server = subprocess.Popen(
        [sys.executable, "-m", "sessiongate", "serve", "--config", str(config_path)],
        env={**os.environ, "SESSIONGATE_STATE_DIR": str(state), "COLUMNS": "250"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        cli = _cli("status", "--wait", "60", "--json", "--config", str(config_path), state=state)
        assert cli.returncode == 0, cli.stderr
        cli_status = json.loads(cli.stdout)["result"]
        url = f"http://127.0.0.1:{data['gateway']['port']}"
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            status = (await http.get("/v1/status")).json()["result"]
            outcomes = await _send_to_missing_keys(http, status)
            signin = await http.post("/ui/signin", data={"token": TOKEN, "next": "/ui/"})
            assert signin.status_code == 303
            page = _page_rows((await http.get("/ui/")).text)
    finally:
        server.send_signal(signal.SIGTERM)
        banner, _ = server.communicate(timeout=30)
    _mark_warned(outcomes, tmp_path / "audit.jsonl")

    policies = status["createOnMissPolicy"]
    assert list(policies) == ["atlas", "peggy", "rex", "zed"]
    assert status["createOnMiss"]["atlas"] is False  # the rule, not the global default
    assert status["createOnMiss"] == {"atlas": False, "peggy": False, "rex": False, "zed": True}
    for agent, policy in policies.items():
        assert status["createOnMiss"][agent] == policy["createOnMiss"]
        assert cli_status["createOnMissPolicy"][agent] == policy
        assert cli_status["createOnMiss"][agent] == policy["createOnMiss"]
        # the main key: reported value, the rules' own verdict, and the resolver agree
        assert _predicted(policy, main_key(agent)) == policy["createOnMiss"]
        assert await _resolver_on_main(data, agent) == policy["createOnMiss"]
        for key, outcome in outcomes[agent].items():
            assert outcome == _predicted(policy, key), (agent, key, policy)
        row, rules = page[agent], policy["rules"]
        assert row["main"] == _mode(policy["createOnMiss"])
        assert row["decidedBy"] == policy["decidedBy"]
        assert row["other"] == _mode(policy["otherKeys"]["createOnMiss"])
        assert row["rules"] == [f"{r['match']} → {_mode(r['createOnMiss'])}" for r in rules]
    for line in policy_lines(policies):
        assert line in banner, banner
    assert [r["match"] for r in policies["rex"]["rules"]] == [
        "*:direct:vip-*", "agent:rex:main", "agent:[r]ex:cron:*"
    ]  # fmt: skip


async def _send_to_missing_keys(
    http: httpx.AsyncClient, status: dict[str, Any]
) -> dict[str, dict[str, bool | str]]:
    """Send to missing keys of every agent: created (true), created and warned, or refused."""
    outcomes: dict[str, dict[str, bool | str]] = {}
    for index, agent in enumerate(status["createOnMissPolicy"]):
        outcomes[agent] = {}
        for key in _missing_keys(agent, default=index == 0):
            args = {"sessionKey": key, "message": "hi", "timeoutSeconds": 0}
            sent = await http.post("/tools/invoke", json={"tool": "sessions_send", "args": args})
            body = sent.json()
            if not body["ok"]:
                assert body["error"]["code"] == "SESSION_NOT_FOUND", body
                outcomes[agent][key] = False
                continue
            shown = (await http.get(f"/v1/sessions/{key}")).json()["result"]
            assert shown["origin"] == "address"
            outcomes[agent][key] = True  # "warn" once the audit log says so
    return outcomes


def _mark_warned(outcomes: dict[str, dict[str, bool | str]], audit: Path) -> None:
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    warned = {e["canonicalKey"] for e in events if e["decision"] == "warned"}
    for keys in outcomes.values():
        for key in keys:
            if key in warned:
                assert keys[key] is True
                keys[key] = "warn"


@pytest.mark.parametrize(
    ("match", "agent", "listed"),
    [("agent:atlas:*", "atlas", True), ("*", "peggy", True), ("agent:at*:x", "atlas", True),
     ("agent:?tlas:*", "atlas", True), ("agent:peggy:*", "atlas", False),
     ("agent:atlas", "atlas", False), ("hook:*", "atlas", True), ("hook:*", "peggy", False),
     ("agent:[!a]tlas:*", "atlas", False), ("*:cron:*", "peggy", True)],
)  # fmt: skip
def test_the_rules_listed_are_those_that_can_match_a_key_of_the_agent(
    match: str, agent: str, listed: bool
) -> None:
    config = parse_config(
        {"gateway": {"sessions": {"rules": [{"match": match, "createOnMiss": False}]}},
         "agents": {"list": [{"id": "atlas", "default": True}, {"id": "peggy"}]}}, "test"
    )  # fmt: skip
    assert bool(effective_for(config, agent).rules) is listed
