"""Hostile input, second round: bounded pre-auth work, numbers out of range, stored values
that cannot be read back, sign-out that signs out, guessing, a planted state dir.

Each test drives the real server over loopback (figures are in benchmarks/abuse).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect

from sessiongate.config import SessionGateConfig
from sessiongate.errors import InvalidRequestError
from sessiongate.server.app import run_gateway
from sessiongate.server.auth import UI_COOKIE
from sessiongate.store import SessionStore, open_store
from sessiongate.store.base import MessageRecord, NewSession, Provenance
from tests.helpers import (
    MAIN_MESSAGES,
    OPENCLAW_STORE,
    PHANTOM_MESSAGES,
    as_json,
    connected,
    free_port,
    import_store,
    sessiongate,
    write_config,
)
from tests.helpers import ws_request as request

ConfigFactory = Callable[..., SessionGateConfig]
Serve = Callable[[SessionGateConfig], Any]

MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


# --- pre-auth work is bounded ----------------------------------------------------------


async def test_the_sign_in_form_reads_a_few_kib_at_most(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    flood = b"%41=%42&" * 131_000  # ~1 MiB of fields, parsed before the token was checked
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        headers = {"content-type": "application/x-www-form-urlencoded"}
        declared = await http.post("/ui/signin", content=flood, headers=headers)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

        async def chunks() -> Any:  # no Content-Length: cut off once past the cap
            for _ in range(256):
                yield b"%41=%42&" * 512

        chunked = await http.post("/ui/signin", content=chunks(), headers=headers)
        assert chunked.status_code == 413
        many = await http.post("/ui/signin", content=b"a=b&" * 100, headers=headers)
        assert many.status_code == 400 and many.json()["error"]["code"] == "INVALID_REQUEST"
        ok = await http.post("/ui/signin", data={"token": gw.token, "next": "/ui/"})
        assert ok.status_code == 303


# --- numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["1e999", "2.5e400", "1" + "0" * 5000])
async def test_numbers_out_of_range_are_invalid_requests_on_http(
    serve: Serve, config_factory: ConfigFactory, number: str
) -> None:
    async with serve(config_factory(gateway__compat={"openclaw": True})) as gw:
        headers = {"authorization": f"Bearer {gw.token}", "content-type": "application/json"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            for extra in ("", ', "dryRun": true'):
                body = f'{{"tool": "sessions_list", "args": {{"activeMinutes": {number}}}{extra}}}'
                answer = await http.post("/tools/invoke", content=body)
                assert answer.status_code == 400, answer.text
                assert answer.json()["error"]["code"] == "INVALID_REQUEST"


async def test_numbers_out_of_range_are_invalid_requests_on_ws_and_mcp(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        ws = await connected(gw)
        raw = '{"type":"req","id":7,"method":"sessions.list","params":{"activeMinutes":1e999}}'
        await ws.send(raw)
        answer = json.loads(await ws.recv())
        assert answer["ok"] is False and answer["error"]["code"] == "INVALID_REQUEST"
        assert (await request(ws, 8, "sessions.list"))["ok"]  # the connection stays usable
        await ws.close()
        headers = {"authorization": f"Bearer {gw.token}", **MCP_HEADERS}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            call = (
                '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sessions_list",'
                '"arguments":{"activeMinutes":1e999}}}'
            )
            answer = (await http.post("/mcp", content=call)).json()
            assert answer["result"]["isError"] is True
            assert answer["result"]["structuredContent"]["error"]["code"] == "INVALID_REQUEST"


# --- the store refuses what it cannot read back -----------------------------------------


def _session(key: str, created: Any, updated: Any) -> Any:
    from sessiongate.store.base import SessionRecord

    provenance = Provenance("imported")
    return SessionRecord(key, "atlas", "direct", "active", None, None, provenance, created,
                         updated, 1)  # fmt: skip


@pytest.mark.parametrize(
    "when",
    [1e300, float("inf"), float("nan"), -5.0, 10**400],
    ids=["1e300", "inf", "nan", "neg", "huge"],
)
async def test_every_store_refuses_a_timestamp_it_cannot_read_back(
    store: SessionStore, when: Any
) -> None:
    key = "agent:atlas:direct:time"
    bad_session = _session(key, when, 1.0)
    with pytest.raises(InvalidRequestError):
        await store.import_session(bad_session, [])
    good = _session(key, 1.0, 1.0)
    bad_message = MessageRecord(key, 1, "user", "hi", None, when, {})
    with pytest.raises(InvalidRequestError):
        await store.import_session(good, [bad_message])
    assert await store.find(key) is None
    await store.ensure(NewSession("agent:atlas:main", "atlas", "main", Provenance("startup")))
    with pytest.raises(InvalidRequestError):
        await store.append_message("agent:atlas:main", "user", "x", created_at=when)
    page = await store.list_sessions(limit=10)
    assert [s.key for s in page.sessions] == ["agent:atlas:main"]


async def test_a_listing_skips_a_row_it_cannot_read_instead_of_failing(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    async with serve(config_factory()) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            body = {"tool": "sessions_send", "args": {"sessionKey": "main", "message": "hi"}}
            assert (await http.post("/tools/invoke", json=body)).json()["ok"]
            with sqlite3.connect(tmp_path / "state.db") as db:  # as an old import left it
                db.execute("UPDATE sessions SET updated_at = 1e400 WHERE key = 'agent:atlas:main'")
            listed = await http.get("/v1/sessions")
            assert listed.status_code == 200, listed.text
            keys = [s["key"] for s in listed.json()["result"]["sessions"]]
            assert keys == ["agent:peggy:main"]
            shown = await http.get("/v1/sessions/agent:atlas:main")
            assert shown.status_code == 200 and shown.json()["result"]["updatedAt"] is None


# --- sign-out signs out ---------------------------------------------------------------


async def _sign_in(http: httpx.AsyncClient, token: str) -> tuple[str, str]:
    """Sign in: the cookie value and the CSRF token of the page's forms."""
    response = await http.post("/ui/signin", data={"token": token, "next": "/ui/send"})
    assert response.status_code == 303
    page = (await http.get("/ui/send")).text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return http.cookies[UI_COOKIE], found[1]


async def _page_status(url: str, cookie: str) -> int:
    async with httpx.AsyncClient(base_url=url, cookies={UI_COOKIE: cookie}) as copy:
        return (await copy.get("/ui/sessions")).status_code


async def test_a_signed_out_cookie_is_void_in_every_process_on_postgres(
    config_factory: ConfigFactory, postgres_url: str
) -> None:
    config = config_factory(storage={"url": postgres_url})
    token = secrets.token_urlsafe(24)
    async with run_gateway(config, token) as one, run_gateway(config, token) as two:
        async with httpx.AsyncClient(base_url=one.url) as http:
            cookie, csrf = await _sign_in(http, token)
            assert await _page_status(two.url, cookie) == 200  # the other process knows it
            out = await http.post("/ui/signout", data={"csrf": csrf})
            assert out.status_code == 303
        for url in (one.url, two.url):
            assert await _page_status(url, cookie) == 303  # back to the sign-in form
            async with httpx.AsyncClient(base_url=url, cookies={UI_COOKIE: cookie}) as copy:
                post = await copy.post("/ui/send", data={"csrf": csrf, "sessionKey": "main",
                                                         "message": "x"})  # fmt: skip
                assert post.status_code == 401
        ws = await connect(two.ws_url, additional_headers={"cookie": f"{UI_COOKIE}={cookie}",
                                                            "origin": two.url})  # fmt: skip
        answer = await request(ws, 1, "connect")
        assert answer["ok"] is False and answer["error"]["code"] == "UNAUTHORIZED"


async def test_a_new_token_signs_every_page_out(
    config_factory: ConfigFactory, tmp_path: Path
) -> None:
    config = config_factory()
    first = run_gateway(config, "first-token-" + "x" * 20)
    async with first as gw, httpx.AsyncClient(base_url=gw.url) as http:
        cookie, _ = await _sign_in(http, gw.token)
    async with run_gateway(config, "second-token-" + "y" * 20) as gw:
        assert await _page_status(gw.url, cookie) == 303


# --- guessing is paced ----------------------------------------------------------------


def _from(source: str, url: str, **options: Any) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=url, transport=transport, **options)


async def test_wrong_tokens_are_paced_per_address_counted_and_audited_in_bulk(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    limits = {"failedAuthBurstPerClient": 3, "failedAuthPerMinutePerClient": 0.01}
    async with serve(config_factory(gateway__limits=limits)) as gw:
        wrong = {"authorization": "Bearer not-the-token"}
        right = {"authorization": f"Bearer {gw.token}"}
        async with _from("127.0.0.2", gw.url) as guesser, _from("127.0.0.3", gw.url) as honest:
            statuses = [(await guesser.get("/v1/sessions", headers=wrong)).status_code
                        for _ in range(5)]  # fmt: skip
            assert statuses == [401, 401, 401, 429, 429]
            locked = await guesser.get("/v1/sessions", headers=right)  # not even compared
            assert locked.status_code == 429
            assert locked.json()["error"]["code"] == "TOO_MANY_REQUESTS"
            assert locked.json()["error"]["details"]["reason"] == "failed-auth"
            assert (await guesser.get("/healthz")).status_code == 200
            assert (await honest.get("/v1/sessions", headers=right)).status_code == 200
            assert (await honest.get("/v1/sessions")).status_code == 401  # no token: no guess
            form = {"token": "wrong", "next": "/ui/"}
            signins = [(await honest.post("/ui/signin", data=form)).status_code
                       for _ in range(4)]  # fmt: skip
            assert signins == [401, 401, 401, 429]
            metrics = (await honest.get("/metrics", headers=right)).text
        assert 'sessiongate_failed_auth_total{outcome="denied",surface="http"} 3.0' in metrics
        assert 'sessiongate_failed_auth_total{outcome="locked",surface="http"} 3.0' in metrics
        assert 'sessiongate_failed_auth_total{outcome="denied",surface="ui"} 3.0' in metrics
        await gw.gateway.audit.flush()
        lines = (tmp_path / "audit.jsonl").read_text().splitlines()
        failed = [json.loads(line) for line in lines if '"auth-failed"' in line]
        assert [(e["client"], e["failures"]) for e in failed] == [
            ("127.0.0.2", 1),
            ("127.0.0.3", 1),
        ]  # one line per address and minute, not one per guess
        codes = []
        for token in ("wrong", "wrong", "wrong", gw.token):  # the WebSocket from 127.0.0.1
            async with connect(gw.ws_url) as ws:
                codes.append((await request(ws, 1, "connect", token=token))["error"]["code"])
        assert codes == ["UNAUTHORIZED"] * 3 + ["TOO_MANY_REQUESTS"]
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    audited: Counter[str] = Counter()
    for event in (json.loads(line) for line in lines if '"auth-failed"' in line):
        audited[event["client"]] += event["failures"]
    assert audited == {"127.0.0.1": 3, "127.0.0.2": 3, "127.0.0.3": 3}  # all, by shutdown


# --- an import cannot poison the store ------------------------------------------------


def _raw_session(folder: Path, key: str, lines: list[str], **entry: Any) -> Path:
    """An index entry and a transcript whose message lines are given as raw JSON text."""
    session_id = entry.pop("sessionId", None) or str(uuid.uuid4())
    header = {
        "type": "session",
        "version": 3,
        "id": session_id,
        "timestamp": "2026-11-25T14:30:00Z",
    }
    path = folder / f"{session_id}.jsonl"
    if not session_id.startswith("."):
        path.write_text(json.dumps(header) + "\n" + "".join(f"{x}\n" for x in lines))
    index_path = folder / "sessions.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index[key] = {"sessionId": session_id, "sessionFile": f"{session_id}.jsonl", **entry}
    index_path.write_text(json.dumps(index), encoding="utf-8")
    return path


def _message_line(text: str = '"hi"', timestamp: str = "1795617000000") -> str:
    return (
        '{"type":"message","id":"e1","message":{"role":"user","content":[{"type":"text",'
        f'"text":{text}}}],"timestamp":{timestamp}}}}}'
    )


def test_an_import_reports_and_skips_what_the_store_could_not_read_back(tmp_path: Path) -> None:
    state = tmp_path / "openclaw"
    shutil.copytree(OPENCLAW_STORE, state)
    folder = state / "agents" / "atlas" / "sessions"
    bad = {
        "agent:atlas:cron:t1e300": [_message_line(timestamp="1e300")],
        "agent:atlas:cron:tinf": [_message_line(timestamp="1e400")],
        "agent:atlas:cron:t400": [_message_line(timestamp="9" * 400)],
        "agent:atlas:cron:hugeint": [_message_line(timestamp="1" * 5000)],
        "agent:atlas:cron:deep": ['{"type":"message","x":' + "[" * 150_000 + "]" * 150_000 + "}"],
        "agent:atlas:cron:object": [_message_line(text='{"a":1}')],
    }
    paths = {key: _raw_session(folder, key, lines) for key, lines in bad.items()}
    _raw_session(folder, "agent:atlas:cron:indextime", [_message_line()], updatedAt=1e300)
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    result = import_store(config, state)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1
    report = as_json(result)["result"]
    problems = {p["sessionKey"]: p for p in report["problems"]}
    assert set(problems) == {*bad, "agent:atlas:cron:indextime"}
    for key, path in paths.items():
        assert (problems[key]["path"], problems[key]["line"]) == (str(path), 2), problems[key]
    assert problems["agent:atlas:cron:indextime"]["path"].endswith("sessions.json")
    assert "not a time" in problems["agent:atlas:cron:indextime"]["reason"]
    assert report["agents"]["atlas"]["imported"] == 5  # the fixture's sessions are all there
    listed = sessiongate("sessions", "list", "-c", str(config), "--json")
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]


def test_an_import_reads_nothing_outside_the_source_folder_unless_allowed(tmp_path: Path) -> None:
    state = tmp_path / "openclaw"
    shutil.copytree(OPENCLAW_STORE, state)
    folder = state / "agents" / "atlas" / "sessions"
    outside = tmp_path / "outside"
    outside.mkdir()
    header = json.dumps({"type": "session", "version": 3, "id": "x"})
    (outside / "notes.jsonl").write_text(header + "\n" + _message_line('"secret"') + "\n")
    _raw_session(folder, "agent:atlas:cron:dotdot", [], sessionId="../../../../outside/notes")
    linked = _raw_session(folder, "agent:atlas:cron:linked", [])
    linked.unlink()
    linked.symlink_to(outside / "notes.jsonl")
    peggy = state / "agents" / "peggy"
    peggy.mkdir()
    (outside / "peggy").mkdir()
    (outside / "peggy" / "sessions.json").write_text("{}")
    (peggy / "sessions").symlink_to(outside / "peggy")
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    report = as_json(import_store(config, state))["result"]
    refused = [p for p in report["problems"] if "outside the source folder" in p["reason"]]
    assert len(refused) == 3, report["problems"]
    assert report["messages"] == MAIN_MESSAGES + 4 * PHANTOM_MESSAGES  # nothing of outside/
    allowed = as_json(import_store(config, state, "--allow-outside", str(outside)))["result"]
    assert [p for p in allowed["problems"] if "outside" in p["reason"]] == []
    assert allowed["messages"] == 2


# --- a planted state folder is not trusted --------------------------------------------


def _serve_once(config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """`sessiongate serve` that must refuse to start (a start would time out the test)."""
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(state)}
    port = str(free_port())
    command = [
        sys.executable,
        "-m",
        "sessiongate",
        "serve",
        "--config",
        str(config),
        "--port",
        port,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def test_serve_refuses_a_state_folder_others_can_write_or_a_symlinked_token(
    tmp_path: Path,
) -> None:
    state = tmp_path / "planted"
    state.mkdir()
    attacker = tmp_path / "attacker-token"
    attacker.write_text("chosen-by-someone-else-0123456789\n")
    (state / "gateway.token").symlink_to(attacker)
    state.chmod(0o777)
    config = tmp_path / "config.json5"
    storage = {"url": f"sqlite:///{tmp_path / 'x.db'}"}
    config.write_text(json.dumps({"storage": storage, "audit": {"path": str(state / "a.jsonl")}}))
    for fix in ("unlink", "chmod", None):
        result = _serve_once(config, state)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        assert "refusing to start" in result.stderr + result.stdout
        if fix == "unlink":
            assert "gateway.token is a symlink" in result.stderr + result.stdout
            (state / "gateway.token").unlink()
        elif fix == "chmod":
            assert "writable by group or others" in result.stderr + result.stdout
            state.chmod(0o700)
            (state / "stray").write_text("x")
            (state / "stray").chmod(0o666)
        else:
            assert "stray is writable by group or others" in result.stderr + result.stdout


async def test_the_audit_reader_refuses_a_symlink_as_the_writer_does(
    serve: Serve, config_factory: ConfigFactory, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere.jsonl"
    secret.write_text(json.dumps({"decision": "rejected", "requestedKey": "agent:x:leaked"}) + "\n")
    (tmp_path / "audit.jsonl").symlink_to(secret)
    async with serve(config_factory()) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        await _sign_in(http, gw.token)
        page = await http.get("/ui/audit")
        assert "agent:x:leaked" not in page.text
        assert "symlink" in page.text
    config = tmp_path / "tail.json5"
    config.write_text(json.dumps({"audit": {"path": str(tmp_path / "audit.jsonl")}}))
    tail = sessiongate("audit", "tail", "--config", str(config))
    assert "agent:x:leaked" not in tail.stdout and "Traceback" not in tail.stderr
    assert tail.returncode != 0 and "symlink" in tail.stdout + tail.stderr


# --- the page shows keys and labels as they are ---------------------------------------


async def test_the_page_encodes_keys_in_links_and_shows_controls_and_bidi_visibly(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    async with serve(config_factory()) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as api:
            send = {"sessionKey": "agent:atlas:cron:a#b", "message": "hi"}
            assert (await api.post("/tools/invoke", json={"tool": "sessions_send",
                                                          "args": send})).json()["ok"]  # fmt: skip
            spawn = {"agentId": "atlas", "task": "t", "label": "gpj.\u202eexe\x1b[31m"}
            spawned = await api.post("/tools/invoke", json={"tool": "sessions_spawn",
                                                            "args": spawn})  # fmt: skip
            assert spawned.json()["ok"], spawned.text
        async with httpx.AsyncClient(base_url=gw.url) as http:
            await _sign_in(http, gw.token)
            page = (await http.get("/ui/sessions")).text
            assert 'href="/ui/sessions/agent:atlas:cron:a%23b"' in page
            assert "\u202e" not in page and "\x1b" not in page
            assert "gpj.⟨U+202E⟩exe⟨U+001B⟩[31m" in page
            shown = await http.get("/ui/sessions/agent:atlas:cron:a%23b")
            assert shown.status_code == 200 and "agent:atlas:cron:a#b" in shown.text
            css = (await http.get(re.findall(r'href="(/ui/static/ui[^"]*\.css)"', page)[0])).text
            assert "unicode-bidi: isolate" in css


# --- logs -----------------------------------------------------------------------------


async def test_with_json_logs_every_stderr_line_is_json_even_for_garbage(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "json-logs.json5"
    config.write_text(json.dumps({"gateway": {"port": port, "auth": {"token": "t" * 24}},
                                  "storage": {"url": f"sqlite:///{tmp_path / 'j.db'}"},
                                  "audit": {"path": str(tmp_path / "j.jsonl")}}))  # fmt: skip
    env = {**os.environ, "SESSIONGATE_STATE_DIR": str(tmp_path / "j-state")}
    command = [sys.executable, "-m", "sessiongate", "serve", "--config", str(config),
               "--log-format", "json"]  # fmt: skip
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(400):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        for _ in range(5):  # garbage before any request line: each connection is dropped
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\x16\x03\x01 not http at all\r\n\r\n")
            await reader.read()
            writer.close()
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(b"\xff\xfe not utf-8", text=True)
            with contextlib.suppress(Exception):
                await ws.recv()
    finally:
        process.terminate()
        process.wait(timeout=30)
    lines = [line for line in stderr_path.read_text(errors="replace").splitlines() if line]
    assert lines, "the garbage was logged"
    for line in lines:
        json.loads(line)  # raises on any plain-text line
    assert len(lines) <= 5 + 1 + 2  # at most once per connection (plus start and stop)


# --- no agent list, no existence for a restricted caller ------------------------------


async def test_agent_errors_name_no_agent_a_restricted_caller_cannot_reach(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    config = config_factory(
        tools={"sessions": {"visibility": "agent"}, "agentToAgent": {"enabled": False}},
        gateway__sessions={"createOnMiss": False},
    )
    async with serve(config) as gw:
        headers = {"authorization": f"Bearer {gw.token}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers) as http:
            probes = [
                ("sessions_send", {"sessionKey": "agent:nobody:main", "message": "x"}),
                ("sessions_send", {"sessionKey": "agent:atlsa:main", "message": "x"}),
                ("sessions_spawn", {"agentId": "atlsa", "task": "t"}),
            ]
            for tool, args in probes:
                body = {"tool": tool, "args": args, "sessionKey": "agent:peggy:main"}
                answer = await http.post("/tools/invoke", json=body)
                assert answer.status_code == 404, answer.text
                assert "atlas" not in answer.text, (tool, answer.text)
            refusals = []
            for key in ("agent:atlas:main", "agent:atlas:cron:never"):  # exists / does not
                args = {"sessionKey": key, "message": "x"}
                body = {"tool": "sessions_send", "args": args, "sessionKey": "agent:peggy:main"}
                answer = await http.post("/tools/invoke", json=body)
                refusals.append((answer.status_code, answer.text.replace(key, "KEY")))
            assert refusals[0] == refusals[1]
            operator = await http.post("/tools/invoke", json={"tool": "sessions_spawn",
                                                              "args": probes[2][1]})  # fmt: skip
            assert "atlas" in operator.text  # the operator is told what it may have meant


async def test_floods_of_every_unauthenticated_entry_leave_an_honest_client_served(
    serve: Serve, config_factory: ConfigFactory
) -> None:
    big = b"%41=%42&" * 131_000
    async with serve(config_factory()) as gw:

        async def flood(path: str, content: bytes, headers: dict[str, str]) -> Counter[int]:
            seen: Counter[int] = Counter()
            async with _from("127.0.0.2", gw.url, timeout=60) as client:
                for _ in range(15):
                    seen[
                        (await client.post(path, content=content, headers=headers)).status_code
                    ] += 1
            return seen

        async def ws_flood() -> int:
            answered = 0
            for _ in range(15):
                async with connect(gw.ws_url, max_size=None) as ws:
                    await ws.send("x" * 900_000)  # not JSON, before connect
                    answered += json.loads(await ws.recv())["ok"] is False
            return answered

        async def honest() -> list[bool]:
            headers = {"authorization": f"Bearer {gw.token}"}
            body = {"tool": "sessions_send", "args": {"sessionKey": "main", "message": "hi"}}
            async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=60) as client:
                return [
                    (await client.post("/tools/invoke", json=body)).json()["ok"] for _ in range(10)
                ]

        form = {"content-type": "application/x-www-form-urlencoded"}
        wrong = {"authorization": "Bearer wrong", "content-type": "application/json"}
        results = await asyncio.gather(
            flood("/ui/signin", big, form),
            flood("/tools/invoke", big, {"content-type": "application/json"}),
            flood("/mcp", big, {**MCP_HEADERS}),
            flood("/tools/invoke", b"{}", wrong),
            ws_flood(),
            honest(),
        )
        signin, api, mcp, guesses, ws_answers, honest_results = results
        assert set(signin) == {413} and set(api) == {401} and set(mcp) == {401}
        assert set(guesses) <= {401, 429} and ws_answers == 15
        assert all(honest_results)


async def test_a_postgres_listing_skips_a_row_it_cannot_read(postgres_url: str) -> None:
    store = await open_store(postgres_url)
    try:
        for key in ("agent:atlas:main", "agent:peggy:main"):
            await store.ensure(NewSession(key, key.split(":")[1], "main", Provenance("startup")))
        schema = postgres_url.rsplit("schema=", 1)[1]
        conn = await asyncpg.connect(postgres_url.split("?")[0])
        try:  # as an import before the stores refused such times left it
            await conn.execute(
                f'UPDATE "{schema}".sessions SET updated_at = $1 WHERE key = $2',
                float("inf"),
                "agent:atlas:main",
            )
        finally:
            await conn.close()
        page = await store.list_sessions(limit=10)
        assert [s.key for s in page.sessions] == ["agent:peggy:main"]
        found = await store.find("agent:atlas:main")
        assert found is not None and found.to_wire()["updatedAt"] is None
    finally:
        await store.close()
