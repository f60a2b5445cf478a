"""What a user reads is true and useful: suggestions are addresses, refusals name what
decided, and every refused address leaves an audit line — on every surface."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sessiongate.client import AsyncSessionGateClient
from sessiongate.config import SessionGateConfig
from sessiongate.errors import AgentNotFoundError
from sessiongate.mcp_bridge import gateway_client
from tests.helpers import INCIDENT_KEY, client_for, connected, invoke, sign_in
from tests.helpers import write_config_file as write_config
from tests.helpers import ws_request as request

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

MAIN = "agent:atlas:main"
SHOW = [sys.executable, "-m", "sessiongate", "sessions", "show"]
TYPO = "agent:atlsa:cron:nightly"
FIXED = "agent:atlas:cron:nightly"


async def cli(gw: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI against the in-process gateway (run in a thread: the loop keeps serving)."""
    command = [sys.executable, "-m", "sessiongate", *args, "--url", gw.url]
    env = {**os.environ, "COLUMNS": "200", "SESSIONGATE_TOKEN": gw.token}
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, env=env
    )


async def test_an_unknown_agent_suggests_the_key_with_its_agent_corrected_everywhere(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        made = await invoke(http, "sessions_send", {"sessionKey": FIXED, "message": "x"})
        assert made.status_code == 200
        strict = {"sessionKey": TYPO, "message": "hi", "createOnMiss": False}
        answer = await invoke(http, "sessions_send", strict)
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert error["code"] == "AGENT_NOT_FOUND"
        assert error["details"]["suggestions"] == [FIXED]
        assert "atlas" not in error["message"]  # said once, by whoever shows the suggestions

        ws = await connected(gw)
        frame = await request(ws, 1, "agent", sessionKey=TYPO, message="hi")
        assert frame["error"]["details"]["suggestions"] == [FIXED]
        await ws.close()

        async with gateway_client(gw.url, gw.token, None) as mcp:
            result = await mcp.call_tool("sessions_send", {"sessionKey": TYPO, "message": "hi"})
        assert result.is_error is True
        assert result.structured_content is not None
        assert result.structured_content["error"]["details"]["suggestions"] == [FIXED]
        first_line = result.content[0].text.splitlines()[0]  # type: ignore[union-attr]
        assert first_line.count(FIXED) == 1 and first_line.lower().count("did you mean") == 1

        async with AsyncSessionGateClient(gw.url, token=gw.token) as client:
            with pytest.raises(AgentNotFoundError) as caught:
                await client.send(TYPO, "hi", must_exist=True)
        assert caught.value.details["suggestions"] == [FIXED]

        sent = await cli(gw, "send", TYPO, "hi", "--must-exist")
        assert sent.returncode == 1 and "[AGENT_NOT_FOUND]" in sent.stderr
        assert sent.stderr.count(FIXED) == 1 and sent.stderr.count("did you mean") == 1

        csrf = await sign_in(http, gw.token)
        form = {"csrf": csrf, "sessionKey": TYPO, "message": "hi", "mustExist": "on"}
        page = await http.post("/ui/send", data=form)
        buttons = re.findall(r'<button type="submit" name="sessionKey" value="([^"]+)"', page.text)
        assert buttons == [FIXED]
        clicked = await http.post("/ui/send", data={**form, "sessionKey": buttons[0]})
        assert clicked.status_code == 200 and f'data-session-key="{FIXED}"' in clicked.text


async def test_agent_suggestions_are_only_agents_the_caller_may_see(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(tools={"sessions": {"visibility": "tree"}})
    async with serve(config) as gw, client_for(gw) as http:
        args = {"sessionKey": "agent:atlsa:main", "message": "hi"}
        as_peggy = await invoke(http, "sessions_send", args, "agent:peggy:main")
        error = as_peggy.json()["error"]
        assert error["code"] == "AGENT_NOT_FOUND"
        assert error["details"]["suggestions"] == []
        assert "atlas" not in json.dumps(error).replace("atlsa", "")
        own = await invoke(
            http, "sessions_send", {**args, "sessionKey": "agent:pegy:main"}, "agent:peggy:main"
        )
        assert own.json()["error"]["details"]["suggestions"] == ["agent:peggy:main"]
        as_operator = await invoke(http, "sessions_send", args)
        assert as_operator.json()["error"]["details"]["suggestions"] == ["agent:atlas:main"]


async def test_a_hidden_session_and_a_missing_one_are_refused_in_the_same_true_words(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(tools={"sessions": {"visibility": "tree"}})
    async with serve(config) as gw, client_for(gw) as http:
        args = {"sessionKey": "agent:atlas:cron:nightly", "message": "hi"}
        missing = await invoke(http, "sessions_send", args, "agent:peggy:main")
        assert (await invoke(http, "sessions_send", args)).status_code == 200  # now it exists
        hidden = await invoke(http, "sessions_send", args, "agent:peggy:main")
        assert missing.status_code == hidden.status_code == 404
        assert missing.content == hidden.content
        message = hidden.json()["error"]["message"]
        assert "tools.sessions.visibility=tree" in message
        assert "creat" not in message  # visibility decided, not the create-on-miss policy


async def test_a_create_on_miss_refusal_names_create_on_miss(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(gateway__sessions={"createOnMiss": False})
    async with serve(config) as gw, client_for(gw) as http:
        args = {"sessionKey": "agent:atlas:cron:nightly", "message": "hi"}
        refused = (await invoke(http, "sessions_send", args, "agent:peggy:main")).json()["error"]
        assert "gateway.sessions.createOnMiss=false forbids creating it" in refused["message"]
        assert "visibility" not in refused["message"]


async def test_invalid_keys_and_unknown_agents_are_audited_with_their_suggestions(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    config = config_factory()
    async with serve(config) as gw, client_for(gw) as http:
        for key in ("agent:atlas:mian", "agent:atlsa:main"):
            answer = await invoke(http, "sessions_send", {"sessionKey": key, "message": "m"})
            assert answer.status_code in (400, 404)
        await gw.gateway.audit.flush()
        csrf = await sign_in(http, gw.token)
        assert csrf
        page = (await http.get("/ui/audit", params={"decision": "invalid"})).text
    events = [json.loads(line) for line in config.audit_path.read_text().splitlines()]
    invalid = {e["requestedKey"]: e for e in events if e["decision"] == "invalid"}
    assert invalid["agent:atlas:mian"]["suggestions"] == ["agent:atlas:main"]
    assert invalid["agent:atlas:mian"]["rule"] == "INVALID_SESSION_KEY"
    assert invalid["agent:atlsa:main"]["suggestions"] == ["agent:atlas:main"]
    assert invalid["agent:atlsa:main"]["rule"] == "AGENT_NOT_FOUND"
    assert page.count('class="pill d-invalid"') == 2
    assert "agent:<wbr>atlsa:<wbr>main" in page  # a key breaks only at its colons
    env = {**os.environ, "COLUMNS": "250"}
    config_file = write_config(tmp_path, config)
    tail = subprocess.run(
        [sys.executable, "-m", "sessiongate", "audit", "tail", "-c", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    lines = [line for line in tail.stdout.splitlines() if "invalid" in line]
    assert len(lines) == 2, tail.stdout + tail.stderr
    assert all("suggest agent:atlas:main" in line for line in lines)


async def test_repair_keeps_time_and_the_phantom_keeps_its_own_transcript(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    config = config_factory()
    config_file = write_config(tmp_path, config)
    async with serve(config) as gw, client_for(gw) as http:
        for key, text in ((INCIDENT_KEY, "first, in the phantom"), (MAIN, "later, in main")):
            sent = await invoke(http, "sessions_send", {"sessionKey": key, "message": text})
            assert sent.json()["result"]["status"] == "ok"
    fixed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "sessiongate", "doctor", "--fix", "-c", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    async with serve(config) as gw, client_for(gw) as http:
        history = (await http.get(f"/v1/sessions/{MAIN}/messages")).json()["result"]
        contents = [m["content"] for m in history["messages"]]
        assert contents == [
            "first, in the phantom",
            "echo: first, in the phantom",
            "later, in main",
            "echo: later, in main",
        ]
        assert [bool(m.get("meta", {}).get("recovered")) for m in history["messages"]] == [
            True,
            True,
            False,
            False,
        ]
        own = f"/v1/sessions/{INCIDENT_KEY}/messages"
        kept = (await http.get(own, params={"followAlias": "false"})).json()["result"]
        assert kept["sessionKey"] == INCIDENT_KEY
        assert kept["messages"][0]["content"] == "first, in the phantom"

        listed = await cli(gw, "sessions", "history", MAIN)
        rows = [line for line in listed.stdout.splitlines() if "│" in line]
        assert "first, in the phantom" in rows[1] and "recovered from" in rows[1]
        assert "later, in main" in rows[-2]
        archived = await cli(gw, "sessions", "history", INCIDENT_KEY, "--archived")
        assert archived.returncode == 0 and INCIDENT_KEY in archived.stdout
        assert "later, in main" not in archived.stdout

        await sign_in(http, gw.token)
        page = (await http.get(f"/ui/sessions/{MAIN}")).text
        assert page.index("first, in the phantom") < page.index("later, in main")
        link = re.search(r'href="(/ui/sessions/[^"]+\?archived=1)"', page)
        assert link is not None
        phantom_page = (await http.get(link[1].replace("&amp;", "&"))).text
        assert "own transcript, kept as it was" in phantom_page
        assert "later, in main" not in phantom_page
    shown = await asyncio.to_thread(
        subprocess.run,
        [*SHOW, INCIDENT_KEY, "--archived", "-c", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert shown.returncode == 0 and "archived" in shown.stdout
    assert f"key         │ {INCIDENT_KEY}" in shown.stdout or INCIDENT_KEY in shown.stdout
    assert "None" not in shown.stdout  # empty fields are left out


async def test_must_exist_on_the_wire_is_create_on_miss_false_and_messages_have_no_prefix(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw, client_for(gw) as http:
        args = {"sessionKey": "agent:atlas:cron:new", "message": "hi", "mustExist": True}
        refused = await invoke(http, "sessions_send", args)
        assert refused.status_code == 404
        assert refused.json()["error"]["details"]["policy"] == "call createOnMiss=false"
        both = await invoke(http, "sessions_send", {**args, "createOnMiss": True})
        assert both.status_code == 400
        assert "contradict" in both.json()["error"]["message"]
        neither = await invoke(http, "sessions_send", {"message": "hi"})
        assert "give exactly one of sessionKey or label" in neither.json()["error"]["message"]
        assert "Value error" not in neither.text
        ws = await connected(gw)
        frame = await request(
            ws, 1, "agent", sessionKey="agent:atlas:cron:new", message="hi", mustExist=True
        )
        assert frame["ok"] is False and frame["error"]["code"] == "SESSION_NOT_FOUND"
        await ws.close()
        assert (await http.get("/v1/sessions/agent:atlas:cron:new")).status_code == 404


async def test_a_spawn_or_inbound_message_for_an_unknown_agent_is_audited(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory()
    async with serve(config) as gw, client_for(gw) as http:
        spawned = await invoke(http, "sessions_spawn", {"agentId": "pegy", "task": "t"})
        assert spawned.json()["error"]["code"] == "AGENT_NOT_FOUND"
        assert "did you mean peggy?" in spawned.json()["error"]["message"]
        body = {"peer": {"kind": "direct", "id": "42"}, "text": "hi", "agentId": "zed"}
        inbound = await http.post("/v1/channels/telegram/inbound", json=body)
        assert inbound.json()["error"]["code"] == "AGENT_NOT_FOUND"
        await gw.gateway.audit.flush()
    events = [json.loads(line) for line in config.audit_path.read_text().splitlines()]
    invalid = [e for e in events if e["decision"] == "invalid"]
    assert len(invalid) == 2 and invalid[0]["requestedKey"] == "pegy"
    assert invalid[1]["requestedKey"].startswith("agent:zed:")
    assert all(e["rule"] == "AGENT_NOT_FOUND" for e in invalid)
