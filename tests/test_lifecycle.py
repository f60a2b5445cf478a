"""Delete, reset, archive, label and retention, over the real HTTP surface.

Semantics under test (tools/lifecycle.py): a delete erases and leaves a tombstone;
the key answers SESSION_DELETED to whoever may see it (SESSION_NOT_FOUND to anyone
else) until something made after the delete creates it anew; a main needs force
and stays deleted across a restart; a reset keeps the key with a fresh transcript;
retention runs with a controlled clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from sessiongate.config import SessionGateConfig
from sessiongate.doctor import scan
from sessiongate.resolver import Caller
from sessiongate.store.base import now
from sessiongate.tools.args import PruneArgs
from tests.helpers import make_config

KEY = "agent:atlas:cron:nightly"
DAY = 86_400.0


@asynccontextmanager
async def client(
    serve: Any, config: SessionGateConfig
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with serve(config) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as http:
            yield gw, http


async def send(
    http: httpx.AsyncClient, key: str, message: str = "hi", **extra: Any
) -> dict[str, Any]:
    args = {"sessionKey": key, "message": message, "timeoutSeconds": 10, **extra}
    response = await http.post("/tools/invoke", json={"tool": "sessions_send", "args": args})
    return dict(response.json())


async def test_delete_erases_and_the_key_answers_deleted(serve: Any, tmp_path: Path) -> None:
    config = make_config(tmp_path, gateway__sessions={"rules": [
        {"match": "agent:atlas:cron:*", "createOnMiss": False}]})  # fmt: skip
    async with client(serve, config) as (gw, http):
        await gw.gateway.create_session(KEY, "cli", "test")
        assert (await send(http, KEY))["ok"]
        response = await http.request("DELETE", f"/v1/sessions/{KEY}",
                                      json={"reason": "erasure request"})  # fmt: skip
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        assert result["deleted"] is True and result["messages"] == 2 and result["runs"] == 1
        shown = (await http.get(f"/v1/sessions/{KEY}")).json()
        assert shown["error"]["code"] == "SESSION_DELETED"
        assert shown["error"]["details"]["deletedAt"] == result["deletedAt"]
        refused = await send(http, KEY)
        assert refused["error"]["code"] == "SESSION_DELETED"
        again = await http.request("DELETE", f"/v1/sessions/{KEY}")
        assert again.json()["error"]["code"] == "SESSION_DELETED"
        assert await gw.gateway.store.find(KEY) is None
        await gw.gateway.audit.flush()
        events = [e for e in gw.gateway.audit.read() if e["decision"] == "erased"]
        assert events and events[0]["reason"] == "erasure request"
        assert events[0]["caller"] == {"sessionKey": None, "entryPoint": "http"}


async def test_an_address_made_after_the_delete_creates_a_new_session(
    serve: Any, tmp_path: Path
) -> None:
    async with client(serve, make_config(tmp_path)) as (gw, http):
        key = "agent:atlas:direct:6596143250"
        assert (await send(http, key))["ok"]
        first = await gw.gateway.store.find(key)
        assert (await http.request("DELETE", f"/v1/sessions/{key}")).status_code == 200
        assert (await send(http, key, "again"))["ok"]  # createOnMiss true: a new session
        second = await gw.gateway.store.find(key)
        assert first is not None and second is not None
        assert second.incarnation != first.incarnation
        history = (await http.get(f"/v1/sessions/{key}/messages")).json()["result"]
        assert [m["content"] for m in history["messages"]] == ["again", "echo: again"]
        findings = [f for f in await scan(gw.gateway) if f.kind == "recreated"]
        assert [f.session_key for f in findings] == [key]
        assert findings[0].evidence["provenance"]["origin"] == "address"
        assert findings[0].evidence["tombstone"]["deletedBy"] == "operator via http"
        assert not findings[0].fixable


async def test_a_caller_who_cannot_see_the_key_gets_not_found(serve: Any, tmp_path: Path) -> None:
    config = make_config(tmp_path, tools__sessions={"visibility": "self"})
    async with client(serve, config) as (gw, http):
        await gw.gateway.create_session(KEY, "cli", "test")
        await http.request("DELETE", f"/v1/sessions/{KEY}")
        hidden = await http.get(
            f"/v1/sessions/{KEY}", headers={"x-session-key": "agent:atlas:main"}
        )
        assert hidden.json()["error"]["code"] == "SESSION_NOT_FOUND"
        assert "deletedAt" not in hidden.json()["error"]["details"]


async def test_a_main_needs_force_and_stays_deleted_across_a_restart(
    serve: Any, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    async with client(serve, config) as (gw, http):
        refused = await http.request("DELETE", "/v1/sessions/agent:peggy:main")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "CONFLICT"
        forced = await http.request("DELETE", "/v1/sessions/agent:peggy:main", json={"force": True})
        assert forced.status_code == 200
    async with client(serve, config) as (gw, http):
        assert await gw.gateway.store.find("agent:peggy:main") is None
        assert await gw.gateway.store.find("agent:atlas:main") is not None
        created = await gw.gateway.create_session("agent:peggy:main", "cli", "test")
        assert created[1] is True  # only an explicit create brings it back


async def test_reset_starts_afresh_and_keeps_the_old_transcript_archived(
    serve: Any, tmp_path: Path
) -> None:
    async with client(serve, make_config(tmp_path)) as (gw, http):
        assert (await send(http, "main", "before"))["ok"]
        before = await gw.gateway.store.find("agent:atlas:main")
        response = await http.post("/v1/sessions/main/reset", json={"reason": "fresh start"})
        assert response.status_code == 200, response.text
        assert response.json()["result"]["archivedMessages"] == 2
        after = await gw.gateway.store.find("agent:atlas:main")
        assert before is not None and after is not None
        assert after.incarnation != before.incarnation and after.last_seq == 0
        assert (await send(http, "main", "after"))["ok"]
        history = (await http.get("/v1/sessions/main/messages")).json()["result"]["messages"]
        assert [m["content"] for m in history] == ["after", "echo: after"]


async def test_archive_unarchive_and_label(serve: Any, tmp_path: Path) -> None:
    async with client(serve, make_config(tmp_path)) as (gw, http):
        await gw.gateway.create_session(KEY, "cli", "test")
        archived = (await http.post(f"/v1/sessions/{KEY}/archive")).json()["result"]
        assert archived["status"] == "archived"
        active = (await http.post(f"/v1/sessions/{KEY}/unarchive")).json()["result"]
        assert active["status"] == "active"
        labelled = await http.patch(f"/v1/sessions/{KEY}", json={"label": "nightly job"})
        assert labelled.json()["result"]["label"] == "nightly job"
        cleared = await http.patch(f"/v1/sessions/{KEY}", json={"label": None})
        assert cleared.json()["result"]["label"] is None


async def test_agents_need_the_tool_allowed_operators_do_not(serve: Any, tmp_path: Path) -> None:
    async with client(serve, make_config(tmp_path)) as (gw, http):
        await gw.gateway.create_session(KEY, "cli", "test")
        as_agent = {"x-session-key": "agent:atlas:main"}
        refused = await http.request("DELETE", f"/v1/sessions/{KEY}", headers=as_agent)
        assert refused.json()["error"]["code"] == "FORBIDDEN"
        assert "tool 'sessions_delete' is not allowed" in refused.json()["error"]["message"]
        tool = {"tool": "sessions_delete", "args": {"sessionKey": KEY}}
        assert (await http.post("/tools/invoke", json=tool)).json()["error"]["code"] == "FORBIDDEN"
        assert await gw.gateway.store.find(KEY) is not None
    allow = ["sessions_send", "sessions_delete"]
    async with client(serve, make_config(tmp_path, gateway__tools={"allow": allow})) as (gw, http):
        tool = {"tool": "sessions_delete", "args": {"sessionKey": KEY}, "sessionKey": "main"}
        done = (await http.post("/tools/invoke", json=tool)).json()
        assert done["ok"] and done["result"]["deleted"] is True


async def test_retention_with_a_controlled_clock(serve: Any, tmp_path: Path) -> None:
    rules = [{"match": "agent:*:cron:*", "archiveAfterDays": 7, "deleteAfterDays": 30},
             {"agent": "atlas", "archiveAfterDays": 1, "deleteAfterDays": 1}]  # fmt: skip
    config = make_config(tmp_path, session={"dmScope": "main", "retention": {"rules": rules}})
    async with client(serve, config) as (gw, http):
        gateway = gw.gateway
        await gateway.create_session(KEY, "cli", "test")
        operator = Caller(None, "test")
        start = now()
        soon = await gateway.prune(PruneArgs(dry_run=True), operator, at=start + 2 * DAY)
        assert soon.to_wire()["archive"] == ["agent:atlas:main"]  # cron: 7 days; main: 1
        week = await gateway.prune(PruneArgs(dry_run=True), operator, at=start + 8 * DAY)
        assert sorted(week.to_wire()["archive"]) == sorted(["agent:atlas:main", KEY])
        assert (await gateway.store.find(KEY)).status == "active"  # a dry run changes nothing
        done = await gateway.prune(PruneArgs(dry_run=False), operator, at=start + 8 * DAY)
        assert sorted(done.done) == sorted(["agent:atlas:main", KEY])
        assert (await gateway.store.find(KEY)).status == "archived"
        later = now() + 31 * DAY
        plan = await gateway.prune(PruneArgs(dry_run=True), operator, at=later)
        assert plan.to_wire()["delete"] == [KEY]  # a main is never deleted by retention
        await gateway.prune(PruneArgs(dry_run=False), operator, at=later)
        assert await gateway.store.find(KEY) is None
        assert (await gateway.store.find_tombstone(KEY)) is not None
        assert (await gateway.store.find("agent:atlas:main")).status == "archived"
        response = await http.post("/v1/retention/prune", json={"dryRun": True})
        assert response.json()["result"]["dryRun"] is True


async def test_only_one_process_applies_retention_at_a_time(tmp_path: Path) -> None:
    from sessiongate.store import SqliteSessionStore

    store = await SqliteSessionStore.open(tmp_path / "x.db")
    other = await SqliteSessionStore.open(tmp_path / "x.db")
    try:
        async with store.exclusive("retention") as held:
            assert held
            async with other.exclusive("retention") as second:
                assert not second
        async with other.exclusive("retention") as after:
            assert after
    finally:
        await store.close()
        await other.close()


def test_the_cli_deletes_resets_and_prunes(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from sessiongate.cli import app
    from tests.helpers import config_data

    data = config_data(tmp_path, session={"dmScope": "main", "retention": {
        "rules": [{"match": "agent:*:cron:*", "archiveAfterDays": 7}]}})  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))

    def cli(*argv: str) -> dict[str, Any]:
        result = CliRunner().invoke(app, [*argv, "--json", "--config", str(path)])
        return dict(json.loads(result.stdout))

    assert cli("sessions", "create", KEY)["ok"]
    assert cli("sessions", "prune", "--dry-run")["result"]["dryRun"] is True
    deleted = cli("sessions", "delete", KEY, "--reason", "asked to be forgotten")
    assert deleted["result"]["deleted"] is True
    assert cli("sessions", "show", KEY)["error"]["code"] == "SESSION_DELETED"
    assert cli("sessions", "create", KEY)["result"]["created"] is True  # explicit: back, empty
    assert cli("sessions", "create", "main")["ok"]  # a gateway that served would have made it
    assert cli("sessions", "delete", "main")["error"]["code"] == "CONFLICT"
    assert cli("sessions", "reset", "main")["result"]["reset"] is True
    assert cli("sessions", "archive", KEY)["result"]["status"] == "archived"
    assert cli("sessions", "unarchive", KEY)["result"]["status"] == "active"


def test_the_cli_refuses_an_overlong_reason_in_one_line(tmp_path: Path) -> None:
    import json

    from tests.helpers import config_data, sessiongate

    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_data(tmp_path)))
    reason = "r" * 501  # over the 500 characters a reason may have
    for command in ("delete", "reset", "archive", "unarchive"):
        plain = sessiongate("sessions", command, "main", "--reason", reason, "--config", str(path))
        assert plain.returncode != 0 and "Traceback" not in plain.stderr, plain.stderr
        assert "[INVALID_REQUEST]" in plain.stderr and "reason" in plain.stderr, plain.stderr
        answer = sessiongate(
            "sessions", command, "main", "--reason", reason, "--config", str(path), "--json"
        )
        assert json.loads(answer.stdout)["error"]["code"] == "INVALID_REQUEST", answer.stdout


def test_the_cli_checks_a_created_sessions_label_as_the_wire_does(tmp_path: Path) -> None:
    import json

    from tests.helpers import config_data, sessiongate

    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_data(tmp_path)))
    for label in ("l" * 201,):  # over the 200 characters a label may have
        answer = sessiongate("sessions", "create", KEY, "--label", label, "--config", str(path),
                             "--json")  # fmt: skip
        assert json.loads(answer.stdout)["error"]["code"] == "INVALID_REQUEST", answer.stdout
    shown = sessiongate("sessions", "show", KEY, "--config", str(path), "--json")
    assert json.loads(shown.stdout)["error"]["code"] == "SESSION_NOT_FOUND"  # nothing created


def test_the_cli_shows_a_labels_escape_sequences_visibly(tmp_path: Path) -> None:
    import json

    from tests.helpers import config_data, sessiongate

    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_data(tmp_path)))
    created = sessiongate("sessions", "create", KEY, "--label", "\x1b[31mred\u202e", "--config",
                          str(path), "--json")  # fmt: skip
    assert json.loads(created.stdout)["ok"], created.stdout
    shown = sessiongate("sessions", "show", KEY, "--config", str(path))
    assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout, shown.stdout
    assert "⟨U+001B⟩[31mred⟨U+202E⟩" in shown.stdout, shown.stdout


async def test_the_page_shows_what_will_happen_then_does_it(serve: Any, tmp_path: Path) -> None:
    import re

    async with serve(make_config(tmp_path)) as gw:
        await gw.gateway.create_session(KEY, "cli", "test")
        async with httpx.AsyncClient(base_url=gw.url) as browser:
            await browser.post("/ui/signin", data={"token": gw.token})
            view = await browser.get(f"/ui/sessions/{KEY}")
            assert "/ui/lifecycle/plan?action=delete" in view.text
            plan = await browser.get(f"/ui/lifecycle/plan?action=delete&sessionKey={KEY}")
            assert plan.status_code == 200 and "Nothing has changed yet" in plan.text
            assert "tombstone" in plan.text
            assert await gw.gateway.store.find(KEY) is not None  # the plan changes nothing
            main = await browser.get("/ui/lifecycle/plan?action=delete&sessionKey=main")
            assert "stays deleted" in main.text and 'name="force"' in main.text
            csrf = re.search(r'name="csrf" value="([^"]+)"', plan.text)
            assert csrf is not None
            form = {"csrf": csrf[1], "action": "delete", "sessionKey": KEY, "reason": "gdpr"}
            done = await browser.post("/ui/lifecycle/apply", data=form)
            assert done.status_code == 200 and 'id="lifecycle-done"' in done.text, done.text
        assert await gw.gateway.store.find(KEY) is None
        tombstone = await gw.gateway.store.find_tombstone(KEY)
        assert tombstone is not None and tombstone.reason == "gdpr"
        assert tombstone.deleted_by == "operator via ui"


async def test_the_python_client_deletes_and_the_error_is_typed(serve: Any, tmp_path: Path) -> None:
    import pytest

    from sessiongate import SessionDeletedError, SessionNotFoundError
    from sessiongate.client import AsyncSessionGateClient

    async with serve(make_config(tmp_path)) as gw:
        await gw.gateway.create_session(KEY, "cli", "test")
        async with AsyncSessionGateClient(gw.url, token=gw.token) as client:
            assert (await client.archive(KEY))["status"] == "archived"
            assert (await client.reset(KEY, reason="fresh"))["reset"] is True
            assert (await client.delete(KEY, reason="gone"))["deleted"] is True
            with pytest.raises(SessionDeletedError) as refused:
                await client.resolve(KEY)
            assert isinstance(refused.value, SessionNotFoundError)
            assert refused.value.deleted_at is not None


async def test_a_serving_gateway_runs_retention_by_itself(serve: Any, tmp_path: Path) -> None:
    from .helpers import aeventually

    # every 60 ms; a cron session idle for ~0.1 s is archived (a main is left to its own rule)
    rules = [{"match": "agent:*:cron:*", "archiveAfterDays": 0.000001}]
    retention = {"rules": rules, "intervalMinutes": 0.001}
    config = make_config(tmp_path, session={"dmScope": "main", "retention": retention})
    async with serve(config) as gw:
        await gw.gateway.create_session(KEY, "cli", "test")

        async def archived() -> bool:
            record = await gw.gateway.store.find(KEY)
            return record is not None and record.status == "archived"

        await aeventually(archived, what="the janitor archiving the idle cron session")
        assert (await gw.gateway.store.find("agent:atlas:main")).status == "active"
        await gw.gateway.audit.flush()
        events = [e for e in gw.gateway.audit.read() if e["decision"] == "archived"]
        assert events and events[0]["caller"]["entryPoint"] == "retention"


async def test_an_inbound_message_begun_before_the_delete_never_recreates(
    serve: Any, tmp_path: Path
) -> None:
    import pytest

    from sessiongate import SessionDeletedError
    from sessiongate.store.base import Origin

    direct = "agent:atlas:direct:6596143250"
    config = make_config(tmp_path, session={"dmScope": "per-peer"})
    async with client(serve, config) as (gw, http):
        inbound = {"peer": {"kind": "direct", "id": "6596143250"}, "text": "hi"}
        assert (await http.post("/v1/channels/telegram/inbound", json=inbound)).status_code == 200
        begun = now()  # an inbound message still being handled when the delete lands
        assert (await http.request("DELETE", f"/v1/sessions/{direct}")).status_code == 200
        with pytest.raises(SessionDeletedError):
            await gw.gateway.resolver.ensure_origin_session(
                direct, Origin.INBOUND, "channel", decided_at=begun
            )
        assert await gw.gateway.store.find(direct) is None
        # the person writes again after the delete: a new conversation, with its own provenance
        assert (await http.post("/v1/channels/telegram/inbound", json=inbound)).status_code == 200
        again = await gw.gateway.store.find(direct)
        assert again is not None and again.provenance.origin == "inbound"
        assert again.last_seq == 2
