"""Rolling out strict mode: inbound creation, no existence leak, audit, doctor and repair."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from sessiongate.config import SessionGateConfig, load_config
from sessiongate.resolver import closest_keys
from tests.helpers import INCIDENT_KEY, client_for, invoke, session_keys
from tests.helpers import write_config_file as write_config

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sessiongate", *args]
    merged = {**os.environ, "COLUMNS": "250", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=merged)


def test_closest_keys_compares_segment_by_segment() -> None:
    keys = [
        "agent:atlas:main",
        "agent:atlas:telegram:atlas:direct:6596143251",
        "agent:atlas:cron:nightly",
        "agent:atlas:slack:group:ops",
    ]
    assert closest_keys(INCIDENT_KEY, keys)[0] == "agent:atlas:telegram:atlas:direct:6596143251"
    assert closest_keys("agent:atlas:cron:nigthly", keys)[0] == "agent:atlas:cron:nightly"
    assert closest_keys("hook:x", keys) == []


async def test_inbound_messages_create_their_session_even_when_strict(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(
        gateway__sessions={"createOnMiss": False}, session={"dmScope": "per-channel-peer"}
    )
    async with serve(config) as gw, client_for(gw) as http:
        body = {"peer": {"kind": "direct", "id": "6596143250"}, "text": "hello"}
        first = (await http.post("/v1/channels/telegram/inbound", json=body)).json()["result"]
        assert first["sessionKey"] == "agent:atlas:telegram:direct:6596143250"
        assert (first["created"], first["reply"]) == (True, "echo: hello")
        again = (await http.post("/v1/channels/telegram/inbound", json=body)).json()["result"]
        assert (again["sessionKey"], again["created"]) == (first["sessionKey"], False)
        group = {"peer": {"kind": "group", "id": "ops"}, "text": "hi all", "agentId": "peggy"}
        grouped = (await http.post("/v1/channels/slack/inbound", json=group)).json()["result"]
        assert grouped["sessionKey"] == "agent:peggy:slack:group:ops"
        shown = (await http.get(f"/v1/sessions/{first['sessionKey']}")).json()["result"]
        assert shown["origin"] == "inbound"
        history = (await http.get(f"/v1/sessions/{first['sessionKey']}/messages")).json()
        assert history["result"]["messages"][0]["meta"]["peer"] == "telegram:6596143250"
        before = await session_keys(http)
        bad_channel = await http.post("/v1/channels/Tele%20gram/inbound", json=body)
        assert bad_channel.status_code == 400
        assert bad_channel.json()["error"]["code"] == "INVALID_SESSION_KEY"
        unknown = await http.post("/v1/channels/telegram/inbound", json={**body, "agentId": "zed"})
        assert unknown.json()["error"]["code"] == "AGENT_NOT_FOUND"
        malformed = await http.post("/v1/channels/telegram/inbound", json={"text": "x"})
        assert malformed.json()["error"]["code"] == "INVALID_REQUEST"
        assert await session_keys(http) == before


async def test_inbound_direct_message_lands_in_main_under_dm_scope_main(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, client_for(gw) as http:
        body = {"peer": {"kind": "direct", "id": "42"}, "text": "dm", "accountId": "atlas"}
        result = (await http.post("/v1/channels/telegram/inbound", json=body)).json()
        assert result["result"]["sessionKey"] == "agent:atlas:main"
        assert result["result"]["created"] is False


async def test_an_invisible_session_looks_exactly_like_a_missing_one(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(
        tools={"sessions": {"visibility": "tree"}}, gateway__sessions={"createOnMiss": False}
    )
    secret = "agent:atlas:cron:payroll"
    async with serve(config) as gw, client_for(gw) as http:
        args = {"sessionKey": secret, "message": "peek"}
        missing = await invoke(http, "sessions_send", args, "agent:peggy:main")
        await gw.gateway.resolver.ensure_origin_session(secret, "cli", "test")
        hidden = await invoke(http, "sessions_send", args, "agent:peggy:main")
        assert missing.status_code == hidden.status_code == 404
        assert missing.json() == hidden.json()
        own = await invoke(
            http, "sessions_send", {**args, "sessionKey": "agent:peggy:cron:x"}, "agent:peggy:main"
        )
        assert secret not in own.json()["error"]["details"]["suggestions"]
        operator = await invoke(http, "sessions_send", args)
        assert operator.json()["result"]["sessionKey"] == secret


async def test_audit_failure_never_loses_the_message(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    blocked = tmp_path / "audit-is-a-directory"
    blocked.mkdir()
    async with serve(config_factory(audit={"path": str(blocked)})) as gw, client_for(gw) as http:
        sent = await invoke(http, "sessions_send", {"sessionKey": INCIDENT_KEY, "message": "m"})
        assert sent.json()["result"]["reply"] == "echo: m"
        await gw.gateway.audit.flush()
        metrics = (await http.get("/metrics")).text
        assert "sessiongate_audit_write_failures_total 1.0" in metrics
        history = (await http.get(f"/v1/sessions/{INCIDENT_KEY}/messages")).json()
        assert [m["content"] for m in history["result"]["messages"]] == ["m", "echo: m"]


async def split_brain(http: httpx.AsyncClient, phantom: str) -> None:
    """peggy writes into atlas's main and into a second atlas session, interleaved."""
    for i in range(3):
        for key in ("agent:atlas:main", phantom):
            args = {"sessionKey": key, "message": f"{key[-4:]}-{i}"}
            assert (
                await invoke(http, "sessions_send", args, "agent:peggy:main")
            ).status_code == 200


async def test_doctor_finds_and_repairs_a_phantom_without_losing_anything(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    config = config_factory()
    path = write_config(tmp_path, config)
    async with serve(config) as gw, client_for(gw) as http:
        await split_brain(http, INCIDENT_KEY)
        found = await asyncio.to_thread(cli, "doctor", "--config", str(path), "--json")
        assert found.returncode == 1, found.stderr
        report = json.loads(found.stdout)
        assert [(f["kind"], f["sessionKey"], f["canonicalKey"]) for f in report["findings"]] == [
            ("phantom", INCIDENT_KEY, "agent:atlas:main")
        ]
        fixed = await asyncio.to_thread(cli, "doctor", "--config", str(path), "--fix")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "repaired" in fixed.stdout and "healthy" in fixed.stdout
        again = await asyncio.to_thread(cli, "doctor", "--config", str(path))
        assert again.returncode == 0 and "healthy" in again.stdout
        main = (await http.get("/v1/sessions/agent:atlas:main/messages?limit=100")).json()
        recovered = [m for m in main["result"]["messages"] if m.get("meta", {}).get("recovered")]
        assert [m["content"] for m in recovered if m["role"] == "user"] == [
            "3250-0",
            "3250-1",
            "3250-2",
        ]
        assert all(
            m["meta"]["caller"] == "agent:peggy:main" for m in recovered if m["role"] == "user"
        )
        phantom = (await http.get(f"/v1/sessions/{INCIDENT_KEY}")).json()["result"]
        assert phantom["key"] == "agent:atlas:main"  # the alias leads to the canonical session
        kept = await gw.gateway.store.find(INCIDENT_KEY)
        assert kept is not None and kept.status == "archived" and kept.last_seq == 6
        redirected = await invoke(
            http, "sessions_send", {"sessionKey": INCIDENT_KEY, "message": "x"}
        )
        assert redirected.json()["result"]["sessionKey"] == "agent:atlas:main"
        twice = await asyncio.to_thread(cli, "doctor", "--config", str(path), "--fix", "--json")
        assert json.loads(twice.stdout)["repaired"] == []


async def test_doctor_merges_a_split_brain_that_no_lint_explains(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    config = config_factory(session={"dmScope": "per-peer"})
    path = write_config(tmp_path, config)
    stray = "agent:atlas:direct:6596143250"
    async with serve(config) as gw, client_for(gw) as http:
        await split_brain(http, stray)
        await invoke(http, "sessions_send", {"sessionKey": "agent:peggy:cron:solo", "message": "x"})
        found = await asyncio.to_thread(cli, "doctor", "--config", str(path), "--json")
        findings = json.loads(found.stdout)["findings"]
        assert [(f["kind"], f["sessionKey"], f["canonicalKey"]) for f in findings] == [
            ("split-brain", stray, "agent:atlas:main")
        ]
        assert "agent:peggy:main wrote into both" in findings[0]["reason"]
        fixed = await asyncio.to_thread(cli, "doctor", "--config", str(path), "--fix")
        assert fixed.returncode == 0, fixed.stdout
        assert (await gw.gateway.store.find(stray)).status == "archived"  # type: ignore[union-attr]


async def test_audit_tail_prints_warned_and_refused_addresses(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    config = config_factory(
        gateway__sessions={
            "createOnMiss": False,
            "rules": [{"match": "agent:peggy:*", "createOnMiss": "warn"}],
        }
    )
    path = write_config(tmp_path, config)
    async with serve(config) as gw, client_for(gw) as http:
        await invoke(
            http, "sessions_send", {"sessionKey": INCIDENT_KEY, "message": "m"}, "agent:peggy:main"
        )
        await invoke(http, "sessions_send", {"sessionKey": "agent:peggy:direct:7", "message": "m"})
    plain = cli("audit", "tail", "--config", str(path))
    assert plain.returncode == 0
    lines = plain.stdout.strip().splitlines()
    assert "rejected" in lines[0] and INCIDENT_KEY in lines[0] and "agent:atlas:main" in lines[0]
    assert "by agent:peggy:main" in lines[0]
    assert "warned" in lines[1] and "gateway.sessions.rules[0]" in lines[1]
    as_json = cli("audit", "tail", "-n", "1", "--config", str(path), "--json")
    event = json.loads(as_json.stdout)
    assert event["decision"] == "warned" and event["canonicalKey"] == "agent:peggy:direct:7"


def test_audit_tail_follow_prints_new_events(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    config = tmp_path / "c.json5"
    config.write_text(json.dumps({"audit": {"path": str(audit)}}))
    command = [
        sys.executable,
        "-m",
        "sessiongate",
        "audit",
        "tail",
        "-f",
        "--json",
        "--config",
        str(config),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        event = {"decision": "rejected", "requestedKey": "agent:x:main"}
        for _ in range(3):
            with audit.open("a") as file:
                file.write(json.dumps(event) + "\n")
        assert process.stdout is not None
        line = process.stdout.readline()
        assert json.loads(line)["requestedKey"] == "agent:x:main"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_sessions_create_records_origin_cli(tmp_path: Path) -> None:
    config = tmp_path / "c.json5"
    config.write_text(json.dumps({"storage": {"url": f"sqlite:///{tmp_path}/s.db"}}))
    created = cli(
        "sessions", "create", "agent:atlas:direct:42", "--label", "vip", "-c", str(config)
    )
    assert created.returncode == 0 and "created" in created.stdout
    shown = cli("sessions", "show", "AGENT:ATLAS:DIRECT:42", "-c", str(config), "--json")
    result = json.loads(shown.stdout)["result"]
    assert (result["origin"], result["label"]) == ("cli", "vip")
    assert result["provenance"]["entryPoint"] == "cli"
    again = cli("sessions", "create", "agent:atlas:direct:42", "-c", str(config))
    assert "already exists" in again.stdout


async def test_the_documented_rollout_path_on_the_embedded_default(
    serve: Serve, isolated_state: Path
) -> None:
    """docs/gateway/configuration-reference.md: warn → audit → doctor --fix → false."""
    isolated_state.mkdir(parents=True, exist_ok=True)
    config_file = isolated_state / "config.json5"
    env = {"SESSIONGATE_STATE_DIR": str(isolated_state)}
    config_file.write_text('{ gateway: { sessions: { createOnMiss: "warn" } } }')
    async with serve(load_config()) as gw, client_for(gw) as http:
        warned = await invoke(http, "sessions_send", {"sessionKey": INCIDENT_KEY, "message": "m"})
        assert warned.json()["result"]["status"] == "ok"
    tail = cli("audit", "tail", env=env)
    assert "warned" in tail.stdout and INCIDENT_KEY in tail.stdout
    assert cli("doctor", env=env).returncode == 1
    assert cli("doctor", "--fix", env=env).returncode == 0
    config_file.write_text("{ gateway: { sessions: { createOnMiss: false } } }")
    async with serve(load_config()) as gw, client_for(gw) as http:
        healed = await invoke(http, "sessions_send", {"sessionKey": INCIDENT_KEY, "message": "m"})
        assert healed.json()["result"]["sessionKey"] == "agent:atlas:main"
        typo = await invoke(
            http, "sessions_send", {"sessionKey": "agent:atlas:mian", "message": "m"}
        )
        assert typo.status_code == 400
        assert typo.json()["error"]["code"] == "INVALID_SESSION_KEY"
        assert typo.json()["error"]["details"]["suggestions"] == ["agent:atlas:main"]
        missing = "agent:atlas:telegram:atlas:direct:6596143251"
        near = await invoke(http, "sessions_send", {"sessionKey": missing, "message": "m"})
        assert near.status_code == 404
        assert near.json()["error"]["details"]["suggestions"][0] == "agent:atlas:main"
