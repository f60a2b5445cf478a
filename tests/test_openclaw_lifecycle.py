"""OpenClaw's lifecycle methods and address forms on its protocol at `/`.

`sessions.delete`, `sessions.reset` and `sessions.patch` (operator.admin, as in
OpenClaw); `agent` with `to` (an E.164 number → the key session.dmScope gives)
and with `sessionId` (→ the session that carries it, never a new one); and
`sessions.list` with OpenClaw's own client's `limit: 100000`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sessiongate.openclaw.ids import session_id
from sessiongate.openclaw.importer import OpenClawImporter
from sessiongate.store import NewSession, Provenance
from tests.helpers import FIXTURE, assert_error_object, make_config, openclaw_client
from tests.helpers import openclaw_request as request

STORE = FIXTURE.parent / "store"
ADMIN = ["operator.admin"]
KEY = "agent:atlas:cron:nightly"


def recorded_agent_params() -> dict[str, Any]:
    """The `agent` request OpenClaw's CLI sent in the recording."""
    for line in FIXTURE.read_text().splitlines():
        frame = json.loads(line).get("json", {})
        if frame.get("method") == "agent":
            return dict(frame["params"])
    raise AssertionError("no agent request in the recording")


async def final_answer(ws: Any, rid: str, method: str, **params: Any) -> dict[str, Any]:
    answer = await request(ws, rid, method, **params)
    while answer["ok"] and answer["payload"].get("status") == "accepted":
        while True:  # `agent` answers twice with the same id
            frame = json.loads(await ws.recv())
            if frame["type"] == "res" and frame["id"] == rid:
                answer = frame
                break
    return answer


async def test_delete_reset_and_patch(serve: Any, tmp_path: Path) -> None:
    async with serve(make_config(tmp_path)) as gw:
        await gw.gateway.create_session(KEY, "cli", "test")
        writer = await openclaw_client(gw, ["operator.write"])
        refused = assert_error_object(await request(writer, "1", "sessions.delete", key=KEY))
        assert refused["code"] == "FORBIDDEN" and "operator.admin" in refused["message"]
        await writer.close()
        ws = await openclaw_client(gw, ADMIN)
        patched = await request(ws, "2", "sessions.patch", key=KEY, label="nightly")
        assert patched["ok"] and patched["payload"]["entry"]["label"] == "nightly", patched
        nothing = assert_error_object(await request(ws, "3", "sessions.patch", key=KEY))
        assert nothing["code"] == "INVALID_REQUEST"
        reset = await request(ws, "4", "sessions.reset", key=KEY, reason="new")
        assert reset["ok"] and reset["payload"]["key"] == KEY, reset
        keep = await request(ws, "5", "sessions.delete", key=KEY, deleteTranscript=False)
        assert assert_error_object(keep)["code"] == "INVALID_REQUEST"
        deleted = await request(ws, "6", "sessions.delete", key=KEY)
        assert deleted["ok"] and deleted["payload"]["deleted"] is True, deleted
        gone = assert_error_object(await request(ws, "7", "chat.history", sessionKey=KEY))
        assert gone["code"] == "SESSION_DELETED" and KEY in gone["message"]
        main = assert_error_object(await request(ws, "8", "sessions.delete", key="main"))
        assert main["code"] == "CONFLICT" and "force" in main["message"]
        await ws.close()


async def test_agent_to_a_number_under_dm_scope_main(serve: Any, tmp_path: Path) -> None:
    async with serve(make_config(tmp_path)) as gw:
        ws = await openclaw_client(gw, ["operator.write"])
        params = {**recorded_agent_params(), "idempotencyKey": "to-1"}
        del params["sessionKey"]
        answer = await final_answer(ws, "1", "agent", **params, to="+6596143250")
        assert answer["ok"], answer
        history = await gw.gateway.store.history("agent:atlas:main")
        assert history[-2].content == params["message"]
        await ws.close()


async def test_agent_to_a_number_under_per_peer_must_exist_when_strict(
    serve: Any, tmp_path: Path
) -> None:
    config = make_config(tmp_path, session={"dmScope": "per-peer"},
                         gateway__sessions={"createOnMiss": False})  # fmt: skip
    direct = "agent:atlas:direct:6596143250"
    async with serve(config) as gw:
        ws = await openclaw_client(gw, ["operator.write"])
        before = await gw.gateway.count_sessions()
        refused = await final_answer(ws, "1", "agent", message="hi", to="+6596143250")
        error = assert_error_object(refused)
        assert error["code"] == "SESSION_NOT_FOUND" and direct in error["message"]
        assert await gw.gateway.count_sessions() == before
        await gw.gateway.create_session(direct, "inbound", "test")
        answer = await final_answer(ws, "2", "agent", message="hi", to="+6596143250")
        assert answer["ok"], answer
        bad = await final_answer(ws, "3", "agent", message="hi", to="not a number")
        assert assert_error_object(bad)["code"] == "INVALID_REQUEST"
        await ws.close()


async def test_agent_by_session_id(serve: Any, tmp_path: Path) -> None:
    async with serve(make_config(tmp_path, gateway__sessions={"createOnMiss": False})) as gw:
        report = await OpenClawImporter(gw.gateway.store, gw.gateway.config).run(STORE)
        assert report.agents["atlas"].imported > 0
        index = json.loads((STORE / "agents/atlas/sessions/sessions.json").read_text())
        phantom = "agent:atlas:telegram:atlas:direct:6611890250"
        ws = await openclaw_client(gw, ["operator.write"])
        carried = index[phantom]["sessionId"]
        answer = await final_answer(ws, "1", "agent", message="by id", sessionId=carried)
        assert answer["ok"], answer
        assert (await gw.gateway.store.history(phantom))[-2].content == "by id"
        own = session_id("agent:peggy:main")
        answer = await final_answer(ws, "2", "agent", message="own id", sessionId=own)
        assert answer["ok"], answer
        before = await gw.gateway.count_sessions()
        unknown = "00000000-0000-4000-8000-000000000000"
        error = assert_error_object(await final_answer(ws, "3", "agent", message="x",
                                                       sessionId=unknown))  # fmt: skip
        assert error["code"] == "SESSION_NOT_FOUND" and unknown in error["message"]
        assert await gw.gateway.count_sessions() == before
        await ws.close()


async def test_import_skips_deleted_keys_unless_told(serve: Any, tmp_path: Path) -> None:
    async with serve(make_config(tmp_path)) as gw:
        store, config = gw.gateway.store, gw.gateway.config
        await OpenClawImporter(store, config).run(STORE)
        phantom = "agent:atlas:telegram:atlas:direct:6611890251"
        ws = await openclaw_client(gw, ADMIN)
        assert (await request(ws, "1", "sessions.delete", key=phantom))["ok"]
        await ws.close()
        again = await OpenClawImporter(store, config).run(STORE)
        assert again.agents["atlas"].deleted == 1
        assert await store.find(phantom) is None
        told = await OpenClawImporter(store, config, include_deleted=True).run(STORE)
        assert told.agents["atlas"].imported == 1
        assert await store.find(phantom) is not None


async def test_list_limit_over_the_maximum(serve: Any, tmp_path: Path) -> None:
    async with serve(make_config(tmp_path)) as gw:
        ws = await openclaw_client(gw, ["operator.read"])
        refused = await request(ws, "1", "sessions.list", limit=100000)
        assert assert_error_object(refused)["code"] == "INVALID_REQUEST"
        await ws.close()
    async with serve(make_config(tmp_path, gateway__compat={"openclaw": True})) as gw:
        provenance = Provenance("cli", "test")
        await asyncio.gather(*(gw.gateway.store.ensure(
            NewSession(f"agent:atlas:cron:job{i}", "atlas", "cron", provenance))
            for i in range(510)))  # fmt: skip
        ws = await openclaw_client(gw, ["operator.read"])
        listed = await request(ws, "2", "sessions.list", limit=100000)
        assert listed["ok"], listed
        assert listed["payload"]["count"] == 500 and listed["payload"]["nextCursor"]
        await ws.close()
        import httpx

        headers = {"authorization": f"Bearer {gw.token}"}
        body = {"tool": "sessions_list", "args": {"limit": 100000}}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            answer = (await http.post("/tools/invoke", json=body)).json()
        assert answer["ok"] and len(answer["result"]["details"]["sessions"]) == 500
