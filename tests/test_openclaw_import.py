"""`sessiongate import openclaw` and `doctor` on the OpenClaw 2026.5.7 fixture, run by a user."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from sessiongate.store import SessionStore, open_store
from tests.helpers import (
    MAIN_MESSAGES,
    OPENCLAW_STORE,
    PHANTOM_MESSAGES,
    as_json,
    import_store,
    postgres_schema,
    sessiongate,
    write_config,
)

SESSIONS = OPENCLAW_STORE / "agents" / "atlas" / "sessions"
MAIN = "agent:atlas:main"
PHANTOMS = {f"agent:atlas:telegram:atlas:direct:66118902{n}" for n in range(50, 54)}


def folder_fingerprint(root: Path) -> dict[str, tuple[str, int, int]]:
    """Content hash, size and mtime of every file under `root`, plus the file list itself."""
    return {
        str(p.relative_to(root)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_size,
            p.stat().st_mtime_ns,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def transcript_entry_ids() -> dict[str, set[str]]:
    """The message entry ids of each fixture transcript, by session key."""
    index = json.loads((SESSIONS / "sessions.json").read_text(encoding="utf-8"))
    found: dict[str, set[str]] = {}
    for key, entry in index.items():
        lines = (SESSIONS / f"{entry['sessionId']}.jsonl").read_text(encoding="utf-8").splitlines()
        entries = [json.loads(line) for line in lines]
        found[key] = {e["id"] for e in entries if e["type"] == "message"}
    return found


async def stored_entry_ids(store: SessionStore, key: str) -> set[str]:
    session = await store.find(key)
    assert session is not None
    history = await store.history(key, limit=max(session.last_seq, 1))
    return {m.meta["openclaw"]["entryId"] for m in history if "openclaw" in m.meta}


async def counts(storage_url: str) -> dict[str, tuple[str, int]]:
    store = await open_store(storage_url)
    try:
        page = await store.list_sessions(limit=500)
        return {s.key: (s.provenance.origin, s.last_seq) for s in page.sessions}
    finally:
        await store.close()


def check_first_import(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    report = as_json(result)["result"]
    assert report["agents"]["atlas"] == {
        "entries": 5, "imported": 5, "updated": 0, "unchanged": 0, "skipped": 0,
        "messages": MAIN_MESSAGES + 4 * PHANTOM_MESSAGES, "deleted": 0,
    }  # fmt: skip
    assert report["problems"] == []
    assert report["orphans"] == []


def check_phantoms(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1
    findings = as_json(result)["findings"]
    assert {f["sessionKey"] for f in findings} == PHANTOMS
    for finding in findings:
        assert finding["kind"] == "phantom"
        assert finding["canonicalKey"] == MAIN
        assert "dmScope=main" in finding["reason"]
        evidence = finding["evidence"]
        assert evidence["origin"] == "imported"
        assert evidence["sender"] == "agent:peggy:main"
        assert evidence["tool"] == "sessions_send"
        assert evidence["firstMessage"] == "ping"
        assert evidence["firstMessageAt"].startswith("2026-11-25T14:09")


async def check_repair(storage_url: str) -> None:
    """Every imported message is in agent:atlas:main's history, or still in its own."""
    store = await open_store(storage_url)
    try:
        in_main = await stored_entry_ids(store, MAIN)
        for key, entry_ids in transcript_entry_ids().items():
            own = await stored_entry_ids(store, key)
            assert entry_ids <= own
            assert entry_ids <= in_main
            if key in PHANTOMS:
                phantom = await store.find(key)
                assert phantom is not None
                assert (phantom.status, phantom.alias_of) == ("archived", MAIN)
    finally:
        await store.close()


async def import_diagnose_repair(tmp_path: Path, storage_url: str) -> None:
    config = write_config(tmp_path, storage_url)
    before = folder_fingerprint(OPENCLAW_STORE)

    check_first_import(import_store(config, OPENCLAW_STORE))
    imported = await counts(storage_url)
    assert imported[MAIN] == ("imported", MAIN_MESSAGES)
    assert {k for k, (origin, n) in imported.items() if n == PHANTOM_MESSAGES} == PHANTOMS

    again = as_json(import_store(config, OPENCLAW_STORE))["result"]
    assert again["agents"]["atlas"]["unchanged"] == 5
    assert again["messages"] == 0
    assert await counts(storage_url) == imported

    check_phantoms(sessiongate("doctor", "-c", str(config), "--json"))
    fixed = as_json(sessiongate("doctor", "--fix", "-c", str(config), "--json"))
    assert fixed["healthy"] is True
    assert {r["sessionKey"] for r in fixed["repaired"]} == PHANTOMS
    healthy = sessiongate("doctor", "-c", str(config), "--json")
    assert healthy.returncode == 0
    assert as_json(healthy)["findings"] == []
    await check_repair(storage_url)

    after_fix = await counts(storage_url)
    assert as_json(import_store(config, OPENCLAW_STORE))["result"]["messages"] == 0
    assert await counts(storage_url) == after_fix
    # never a byte written to the OpenClaw folder
    assert folder_fingerprint(OPENCLAW_STORE) == before


async def test_fixture_into_sqlite_imports_once_and_doctor_repairs_the_four_phantoms(
    tmp_path: Path,
) -> None:
    await import_diagnose_repair(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")


async def test_fixture_into_postgres_imports_once_and_doctor_repairs_the_four_phantoms(
    tmp_path: Path,
) -> None:
    async with postgres_schema() as url:
        await import_diagnose_repair(tmp_path, url)


def damaged_copy(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """The fixture with a truncated transcript, a bad JSON line, a missing file, an orphan."""
    state = tmp_path / "openclaw"
    shutil.copytree(OPENCLAW_STORE, state)
    folder = state / "agents" / "atlas" / "sessions"
    index = json.loads((folder / "sessions.json").read_text(encoding="utf-8"))
    files = {k: folder / f"{e['sessionId']}.jsonl" for k, e in index.items()}
    keys = sorted(PHANTOMS)
    truncated = files[keys[0]].read_bytes()
    files[keys[0]].write_bytes(truncated[: len(truncated) - 40])
    lines = files[keys[1]].read_text(encoding="utf-8").splitlines(keepends=True)
    lines[4] = lines[4][:30] + "\n"
    files[keys[1]].write_text("".join(lines), encoding="utf-8")
    files[keys[2]].unlink()
    orphan = folder / f"{uuid.uuid4()}.jsonl"
    shutil.copy(files[MAIN], orphan)
    sessions_id = files[MAIN].stem
    (folder / f"{sessions_id}.trajectory.jsonl").write_text("{}\n", encoding="utf-8")
    (folder / f"{sessions_id}.trajectory-path.json").write_text("{}", encoding="utf-8")
    (folder / f"{sessions_id}.checkpoint.{uuid.uuid4()}.jsonl").write_text("{", encoding="utf-8")
    return state, {"truncated": files[keys[0]], "bad": files[keys[1]],
                   "missing": files[keys[2]], "orphan": orphan}  # fmt: skip


def test_damaged_transcripts_are_reported_by_path_and_line_and_skipped(tmp_path: Path) -> None:
    state, damaged = damaged_copy(tmp_path)
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    before = folder_fingerprint(state)
    result = import_store(config, state)
    assert result.returncode == 1  # something was skipped: scripts notice
    report = as_json(result)["result"]
    problems = {p["path"]: p for p in report["problems"]}
    assert set(problems) == {str(damaged[k]) for k in ("truncated", "bad", "missing")}
    assert problems[str(damaged["truncated"])]["line"] == 10
    assert "truncated" in problems[str(damaged["truncated"])]["reason"]
    assert problems[str(damaged["bad"])]["line"] == 5
    assert "not valid JSON" in problems[str(damaged["bad"])]["reason"]
    assert problems[str(damaged["missing"])]["line"] is None
    assert "missing" in problems[str(damaged["missing"])]["reason"]
    assert report["orphans"] == [str(damaged["orphan"])]
    assert report["sidecarsIgnored"] == 3
    tally = report["agents"]["atlas"]
    assert (tally["imported"], tally["skipped"]) == (2, 3)
    assert tally["messages"] == MAIN_MESSAGES + PHANTOM_MESSAGES
    assert folder_fingerprint(state) == before

    shutil.copy(SESSIONS / damaged["truncated"].name, damaged["truncated"])  # the user repairs it
    again = as_json(import_store(config, state))["result"]
    assert (again["agents"]["atlas"]["imported"], again["messages"]) == (1, PHANTOM_MESSAGES)

    text = sessiongate("import", "openclaw", str(state), "-c", str(config))
    assert text.returncode == 1
    assert f"{damaged['bad']}:5" in text.stdout
    assert "no index entry points to it" in text.stdout


def test_messages_join_a_session_sessiongate_already_has(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    created = sessiongate("sessions", "create", MAIN, "-c", str(config), "--json")
    assert created.returncode == 0, created.stderr
    report = as_json(import_store(config, OPENCLAW_STORE))["result"]
    assert report["agents"]["atlas"]["imported"] == 4
    assert report["agents"]["atlas"]["updated"] == 1
    assert report["messages"] == MAIN_MESSAGES + 4 * PHANTOM_MESSAGES
    again = as_json(import_store(config, OPENCLAW_STORE))["result"]
    assert again["messages"] == 0


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    config = write_config(tmp_path, f"sqlite:///{db}")
    report = as_json(import_store(config, OPENCLAW_STORE, "--dry-run"))["result"]
    assert report["dryRun"] is True
    assert report["agents"]["atlas"]["imported"] == 5
    assert report["messages"] == MAIN_MESSAGES + 4 * PHANTOM_MESSAGES
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/openclaw"], "is not a folder"),
        ([str(OPENCLAW_STORE), "--agent", "nobody"], "no sessions of agent 'nobody'"),
    ],
)
def test_a_wrong_state_dir_or_agent_is_a_usage_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    result = sessiongate("import", "openclaw", *args, "-c", str(config), "--json")
    assert result.returncode == 2
    error = as_json(result)["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert message in error["message"]


def test_an_agent_missing_from_the_config_is_skipped_with_a_hint(tmp_path: Path) -> None:
    config = tmp_path / "only-peggy.json5"
    url = f"sqlite:///{tmp_path / 'state.db'}"
    only_peggy = {"storage": {"url": url}, "agents": {"list": [{"id": "peggy"}]}}
    config.write_text(json.dumps(only_peggy), encoding="utf-8")
    result = import_store(config, OPENCLAW_STORE)
    assert result.returncode == 1
    report = as_json(result)["result"]
    assert report["agents"]["atlas"]["skipped"] == 5
    assert "add it to the config" in report["problems"][0]["reason"]


def test_import_benchmark_runs(tmp_path: Path) -> None:
    """The benchmark's code runs end to end on a small generated store (no timing checks)."""
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "benchmarks.openclaw_import", "--sessions", "30",
               "--no-postgres"]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "import openclaw: 30 sessions" in result.stdout


def add_session(folder: Path, key: str, entry: dict[str, Any], texts: list[str]) -> None:
    """Add an index entry and its transcript (user messages without provenance) to a store copy."""
    session_id = str(uuid.uuid4())
    lines = [{"type": "session", "version": 3, "id": session_id,
              "timestamp": "2026-11-25T14:30:00.000Z", "cwd": "/home/oc"}]  # fmt: skip
    for n, text in enumerate(texts):
        message = {"role": "user", "content": [{"type": "text", "text": text}],
                   "timestamp": 1795617000000 + n * 1000}  # fmt: skip
        lines.append({"type": "message", "id": f"e{n}", "parentId": None,
                      "timestamp": "2026-11-25T14:30:00.000Z", "message": message})  # fmt: skip
    (folder / f"{session_id}.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8"
    )
    index_path = folder / "sessions.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index[key] = {**entry, "sessionId": session_id, "sessionFile": f"/elsewhere/{session_id}.jsonl"}
    index_path.write_text(json.dumps(index), encoding="utf-8")


def test_a_phantom_an_operator_made_shows_its_channel_and_first_message(tmp_path: Path) -> None:
    state = tmp_path / "openclaw"
    shutil.copytree(OPENCLAW_STORE, state)
    folder = state / "agents" / "atlas" / "sessions"
    add_session(folder, "Agent:Atlas:Direct:42", {"channel": "telegram"}, ["status?", "hello"])
    add_session(folder, "agent:atlas:cron:nightly", {"label": "nightly"}, ["run the report"])
    index = json.loads((folder / "sessions.json").read_text(encoding="utf-8"))
    (folder / "sessions.json").write_text(
        json.dumps({**index, "agent:atlas:cron:odd": 7}), encoding="utf-8"
    )
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")

    report = as_json(import_store(config, state))["result"]
    assert [p["sessionKey"] for p in report["problems"]] == ["agent:atlas:cron:odd"]
    assert "not a session entry" in report["problems"][0]["reason"]
    assert report["agents"]["atlas"]["imported"] == 7

    findings = {f["sessionKey"]: f for f in as_json(sessiongate("doctor", "-c", str(config),
                                                                "--json"))["findings"]}  # fmt: skip
    assert set(findings) == PHANTOMS | {"agent:atlas:direct:42"}  # the cron session is reachable
    evidence = findings["agent:atlas:direct:42"]["evidence"]
    assert "sender" not in evidence
    assert evidence["channel"] == "telegram"
    assert "operator or script" in evidence["createdBy"]
    assert "telegram" in evidence["createdBy"]
    assert evidence["firstMessage"] == "status?"
    assert evidence["firstMessageAt"].startswith("2026-11-25T14:30:00")
    text = sessiongate("doctor", "-c", str(config))
    assert "first message 2026-11-25 14:30:00: 'status?'" in text.stdout
    assert "agent:peggy:main" in text.stdout
    assert "sessions_send" in text.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_text_a_store_cannot_hold_skips_that_session_only(
    tmp_path: Path, backend: str
) -> None:
    state = tmp_path / "openclaw"
    shutil.copytree(OPENCLAW_STORE, state)
    folder = state / "agents" / "atlas" / "sessions"
    add_session(folder, "agent:atlas:cron:nul", {}, ["before\x00after"])
    async with contextlib.AsyncExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'state.db'}"
        if backend == "postgres":
            url = await stack.enter_async_context(postgres_schema())
        result = import_store(write_config(tmp_path, url), state)
        assert result.returncode == 1
        report = as_json(result)["result"]
        assert [p["sessionKey"] for p in report["problems"]] == ["agent:atlas:cron:nul"]
        assert "NUL" in report["problems"][0]["reason"]
        assert report["agents"]["atlas"]["imported"] == 5
