"""Server time per control-page view against a SQLite store of 1,000,000 sessions.

Sessions are bulk-loaded straight into the tables (loading is not what is
measured), one of them with a long transcript. Each view is then requested
through the whole ASGI app (routing, sign-in cookie check, gateway calls,
template rendering) in this process — the server's time per page — and, for
comparison, over loopback HTTP from a real uvicorn server.

Run: .venv/bin/python -m benchmarks.ui_pages [--sessions 1000000] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks._common import percentile, print_table, timed
from benchmarks.store_scaling import AGENTS, fill_sqlite
from sessiongate.config import SessionGateConfig, parse_config
from sessiongate.gateway import Gateway
from sessiongate.server.app import create_app, run_gateway
from sessiongate.store import SqliteSessionStore

TOKEN = "bench-token"
TRANSCRIPT_KEY = "agent:atlas:cron:job-0"
TRANSCRIPT_MESSAGES = 1000


def make_config(directory: Path) -> SessionGateConfig:
    agents = [{"id": agent, "default": agent == "atlas"} for agent in AGENTS]
    data = {
        "storage": {"url": f"sqlite:///{directory / 'state.db'}"},
        "audit": {"path": str(directory / "audit.jsonl")},
        "agents": {"list": agents},
    }
    return parse_config(data, "benchmark")


async def build_store(directory: Path, sessions: int) -> None:
    path = directory / "state.db"
    await (await SqliteSessionStore.open(path)).close()  # the schema
    started = time.perf_counter()
    fill_sqlite(path, 0, sessions)
    stamp = time.time()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO messages (session_key, seq, role, content, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (TRANSCRIPT_KEY, seq, "user" if seq % 2 else "assistant", f"message {seq}", stamp)
                for seq in range(1, TRANSCRIPT_MESSAGES + 1)
            ],
        )
        conn.execute(
            "UPDATE sessions SET last_seq = ? WHERE key = ?", (TRANSCRIPT_MESSAGES, TRANSCRIPT_KEY)
        )
    print(f"loaded {sessions:,} sessions in {time.perf_counter() - started:.1f} s")


async def sign_in(http: httpx.AsyncClient) -> None:
    response = await http.post("/ui/signin", data={"token": TOKEN})
    assert response.status_code == 303, response.text


async def deep_cursor(http: httpx.AsyncClient, pages: int) -> str:
    """The cursor `pages` pages into the sessions view (an operator paging far back)."""
    query = ""
    for _ in range(pages):
        text = (await http.get(f"/ui/sessions?{query}")).text
        start = text.index('href="/ui/sessions?') + len('href="/ui/sessions?')
        query = text[start : text.index('"', start)].replace("&amp;", "&")
    return query


VIEWS = {
    "sessions (first page)": "/ui/sessions",
    "sessions, agent filter": "/ui/sessions?agent=peggy",
    "sessions, kind filter": "/ui/sessions?kind=cron",
    "sessions, 20 pages back": None,  # filled in with a real cursor
    "session transcript (latest page)": f"/ui/sessions/{TRANSCRIPT_KEY}",
    "session transcript, older page": f"/ui/sessions/{TRANSCRIPT_KEY}?before=500",
    "overview (counts by origin)": "/ui/",
}


async def measure(http: httpx.AsyncClient, requests: int) -> dict[str, list[float]]:
    await sign_in(http)
    views = dict(VIEWS)
    views["sessions, 20 pages back"] = "/ui/sessions?" + await deep_cursor(http, 20)
    results = {}
    for name, path in views.items():
        assert path is not None
        first = await http.get(path)
        assert first.status_code == 200, (path, first.text[:500])
        count = max(5, requests // 10) if name.startswith("overview") else requests

        async def get(_: int, path: str = path) -> None:
            response = await http.get(path)
            assert response.status_code == 200

        results[name] = await timed(get, count)
    return results


def table(title: str, results: dict[str, list[float]]) -> None:
    rows = [
        (name, f"{percentile(s, 0.5) * 1e3:.1f}", f"{percentile(s, 0.95) * 1e3:.1f}", str(len(s)))
        for name, s in results.items()
    ]
    print_table(title, rows, ("view", "p50 ms", "p95 ms", "requests"))


async def main(sessions: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as raw:
        directory = Path(raw)
        os.environ["SESSIONGATE_STATE_DIR"] = str(directory / "state")
        await build_store(directory, sessions)
        config = make_config(directory)
        gateway = await Gateway.open(config)
        app = create_app(config, TOKEN, gateway)
        app.state.gateway = gateway  # no lifespan under the in-process transport
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                in_process = await measure(http, requests)
        finally:
            await gateway.close()
        table(f"server time per page, {sessions:,} sessions (in-process ASGI)", in_process)
        async with (
            run_gateway(config, TOKEN) as served,
            httpx.AsyncClient(base_url=served.url) as http,
        ):
            table(f"over loopback HTTP, {sessions:,} sessions", await measure(http, requests))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.sessions, args.requests))
