"""Import speed: `sessiongate import openclaw` on a generated OpenClaw store.

.venv/bin/python -m benchmarks.openclaw_import                  # 10,000 sessions
.venv/bin/python -m benchmarks.openclaw_import --sessions 200   # a quick look

The store is written the way OpenClaw 2026.5.7 lays it out (see
tests/fixtures/openclaw-2026.5.7/README.md): agents of 500 sessions each (OpenClaw
keeps at most ~500 per agent), transcripts of 2 to 20 messages between model-change,
custom and bootstrap entries, inter-session provenance on some user messages, and a
trajectory sidecar beside every tenth transcript. It is imported into SQLite (and
PostgreSQL when reachable) through the same code as the command, without the progress
bar; then imported again, which must find nothing new.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._common import console, postgres_reachable, postgres_schema, print_table
from sessiongate.config import SessionGateConfig, parse_config
from sessiongate.openclaw.importer import ImportReport, OpenClawImporter
from sessiongate.store import open_store

PER_AGENT = 500
START_MS = 1_795_000_000_000
ENVELOPE = (
    "[Inter-session message] sourceSession={source} sourceTool=sessions_send isUser=false\n"
    "This content was routed by OpenClaw from another session or internal tool.\n"
)


def _line(entry: dict[str, Any]) -> str:
    return json.dumps(entry, separators=(",", ":")) + "\n"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _message(role: str, text: str, ms: int, parent: str, extra: dict[str, Any]) -> dict[str, Any]:
    body = {"role": role, "content": [{"type": "text", "text": text}], "timestamp": ms, **extra}
    return {"type": "message", "id": uuid.uuid4().hex[:8], "parentId": parent,
            "timestamp": _iso(ms), "message": body}  # fmt: skip


def _transcript(session_id: str, ms: int, exchanges: int, rng: random.Random) -> list[str]:
    lines = [_line({"type": "session", "version": 3, "id": session_id, "timestamp": _iso(ms),
                    "cwd": "/home/oc/.openclaw/workspace"}),
             _line({"type": "model_change", "id": "m0", "parentId": None, "timestamp": _iso(ms),
                    "provider": "fake", "modelId": "fake"})]  # fmt: skip
    parent = "m0"
    for n in range(exchanges):
        ms += rng.randint(500, 60_000)
        extra: dict[str, Any] = {}
        text = f"message {n}: " + "lorem ipsum " * rng.randint(1, 20)
        if rng.random() < 0.2:
            source = f"agent:bench{rng.randint(0, 9):02d}:main"
            extra = {"provenance": {"kind": "inter_session", "sourceSessionKey": source,
                                    "sourceTool": "sessions_send"}}  # fmt: skip
            text = ENVELOPE.format(source=source) + text
        user = _message("user", text, ms, parent, extra)
        reply = _message("assistant", "ack " * rng.randint(1, 40), ms + 300, user["id"],
                         {"usage": {"input": 1, "output": 1}, "stopReason": "stop"})  # fmt: skip
        custom = {"type": "custom", "customType": "openclaw:bootstrap-context:full",
                  "data": {"runId": str(uuid.uuid4())}, "id": uuid.uuid4().hex[:8],
                  "parentId": reply["id"], "timestamp": _iso(ms + 310)}  # fmt: skip
        lines += [_line(user), _line(reply), _line(custom)]
        parent = custom["id"]
    return lines


def _key(agent: str, n: int) -> str:
    if n == 0:
        return f"agent:{agent}:main"
    shapes = (f"agent:{agent}:telegram:direct:{600_000_000 + n}",
              f"agent:{agent}:discord:group:{n}",
              f"agent:{agent}:subagent:{uuid.UUID(int=n)}")  # fmt: skip
    return shapes[n % 3]


def generate_store(root: Path, sessions: int, seed: int = 7) -> tuple[list[str], int]:
    """Write an OpenClaw state dir with `sessions` sessions; return its agents and messages."""
    rng = random.Random(seed)
    agents: list[str] = []
    messages = 0
    for start in range(0, sessions, PER_AGENT):
        agent = f"bench{len(agents):02d}"
        agents.append(agent)
        folder = root / "agents" / agent / "sessions"
        folder.mkdir(parents=True)
        index: dict[str, Any] = {}
        for n in range(min(PER_AGENT, sessions - start)):
            session_id = str(uuid.UUID(int=rng.getrandbits(128)))
            ms = START_MS + rng.randint(0, 86_400_000)
            exchanges = rng.randint(1, 10)
            lines = _transcript(session_id, ms, exchanges, rng)
            (folder / f"{session_id}.jsonl").write_text("".join(lines), encoding="utf-8")
            if n % 10 == 0:
                (folder / f"{session_id}.trajectory.jsonl").write_text("{}\n", encoding="utf-8")
            messages += 2 * exchanges
            index[_key(agent, n)] = {
                "sessionId": session_id, "updatedAt": ms + 3_600_000, "sessionStartedAt": ms,
                "sessionFile": f"/home/oc/.openclaw/agents/{agent}/sessions/{session_id}.jsonl",
                "status": "done", "agentHarnessId": "pi", "channel": "telegram",
            }  # fmt: skip
        (folder / "sessions.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    return agents, messages


def _config(agents: list[str], url: str) -> SessionGateConfig:
    entries = [{"id": a, "default": i == 0} for i, a in enumerate(agents)]
    return parse_config({"storage": {"url": url}, "agents": {"list": entries}}, "benchmark")


async def import_twice(state_dir: Path, agents: list[str], url: str) -> list[ImportReport]:
    """Import into `url`, then again (which must write nothing)."""
    store = await open_store(url)
    try:
        importer = OpenClawImporter(store, _config(agents, url))
        first = await importer.run(state_dir)
        second = await importer.run(state_dir)
    finally:
        await store.close()
    if first.problems or second.messages:
        raise RuntimeError(f"unexpected: {first.problems[:3]} / {second.messages} re-imported")
    return [first, second]


async def measure(sessions: int, postgres: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sg-openclaw-bench-") as tmp:
        root = Path(tmp)
        agents, messages = generate_store(root / "openclaw", sessions)
        results: dict[str, Any] = {"sessions": sessions, "messages": messages}
        targets = {"sqlite": f"sqlite:///{root / 'import.db'}"}
        async with contextlib.AsyncExitStack() as stack:
            if postgres:
                targets["postgres"] = await stack.enter_async_context(
                    postgres_schema("sg_bench_import")
                )
            for name, url in targets.items():
                first, second = await import_twice(root / "openclaw", agents, url)
                results[name] = {
                    "messages": first.messages,
                    "seconds": round(first.seconds, 2),
                    "messages_per_second": round(first.messages_per_second),
                    "sessions_per_second": round(sessions / first.seconds),
                    "rerun_seconds": round(second.seconds, 2),
                }
    return results


def print_results(results: dict[str, Any]) -> None:
    rows = [
        (store, f"{r['messages']:,}", f"{r['seconds']:.2f}", f"{r['messages_per_second']:,}",
         f"{r['sessions_per_second']:,}", f"{r['rerun_seconds']:.2f}")
        for store, r in results.items() if isinstance(r, dict)
    ]  # fmt: skip
    print_table(
        f"import openclaw: {results['sessions']:,} sessions, {results['messages']:,} messages",
        rows,
        ("store", "messages", "seconds", "messages/s", "sessions/s", "re-run s (nothing new)"),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    postgres = not args.no_postgres and await postgres_reachable()
    console.print(f"generating an OpenClaw store of {args.sessions:,} sessions…")
    print_results(await measure(args.sessions, postgres))


if __name__ == "__main__":
    asyncio.run(main())
