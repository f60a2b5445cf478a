"""Fault-injection contract: every backend fails the way real stores fail, and recovers.

Each fault is real: SQLite runs out of pages (``PRAGMA max_page_count``, the
error a full disk gives) or is locked by another connection (a store that stops
answering writes); PostgreSQL gets ``disk_full`` from the server (a trigger
raising SQLSTATE 53100), a cut connection or a silent one (tests/tcp_proxy.py).
After each: the call that hit it gets a typed error with a stable code within
its deadline, the next call succeeds once the fault is gone, every message
acknowledged before is still there, and no store thread has died.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessiongate.errors import SessionGateError
from sessiongate.store import (
    MemorySessionStore,
    NewSession,
    Provenance,
    SessionStore,
    SqliteSessionStore,
    open_store,
)
from sessiongate.store.base import MAX_INDEXED_BYTES
from sessiongate.store.postgres import PostgresSessionStore, split_schema
from sessiongate.store.sqlite_thread import StoreThread
from tests.helpers import POSTGRES_URL, GatewayProcess, postgres_schema, upstream
from tests.tcp_proxy import TcpProxy

DEADLINE = 0.5
KEY = "agent:atlas:main"
FAULT_CODES = {"STORE_UNAVAILABLE", "STORE_TIMEOUT"}


class Faults:
    """A store and the faults it can be given; `None` where a fault cannot happen."""

    def __init__(self, kind: str, store: SessionStore) -> None:
        self.kind = kind
        self.store = store

    async def fill_disk(self) -> None:
        raise NotImplementedError

    async def free_disk(self) -> None:
        raise NotImplementedError

    async def silence(self) -> None:
        raise NotImplementedError

    async def unsilence(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        return True


class SqliteFaults(Faults):
    store: SqliteSessionStore

    def __init__(self, store: SqliteSessionStore) -> None:
        super().__init__("sqlite", store)
        self._locker: sqlite3.Connection | None = None

    async def _pragma(self, statement: str) -> None:
        db = self.store._db
        await self.store._thread.read(lambda: db.execute(statement).fetchall())

    async def fill_disk(self) -> None:
        db = self.store._db
        pages = await self.store._thread.read(lambda: db.execute("PRAGMA page_count").fetchone()[0])
        await self._pragma(f"PRAGMA max_page_count = {pages}")

    async def free_disk(self) -> None:
        await self._pragma("PRAGMA max_page_count = 1073741823")

    async def silence(self) -> None:
        """Another connection takes the write lock and keeps it."""
        self._locker = sqlite3.connect(self.store.path, isolation_level=None)
        self._locker.execute("BEGIN EXCLUSIVE")

    async def unsilence(self) -> None:
        assert self._locker is not None
        self._locker.execute("COMMIT")
        self._locker.close()

    def alive(self) -> bool:
        return self.store._thread.alive


class PostgresFaults(Faults):
    def __init__(self, store: SessionStore, schema: str, proxy: TcpProxy) -> None:
        super().__init__("postgres", store)
        self.schema = schema
        self.proxy = proxy

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def fill_disk(self) -> None:
        s = self.schema
        await self._admin(f"""
            CREATE FUNCTION "{s}".disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'
                  USING ERRCODE = 'disk_full'; END $$;
            CREATE TRIGGER disk_full BEFORE INSERT ON "{s}".messages
                FOR EACH ROW EXECUTE FUNCTION "{s}".disk_full();
            CREATE TRIGGER disk_full BEFORE INSERT ON "{s}".sessions
                FOR EACH ROW EXECUTE FUNCTION "{s}".disk_full();""")

    async def free_disk(self) -> None:
        s = self.schema
        await self._admin(f'DROP FUNCTION "{s}".disk_full() CASCADE')

    async def silence(self) -> None:
        self.proxy.freeze()

    async def unsilence(self) -> None:
        self.proxy.thaw()


@contextlib.asynccontextmanager
async def proxied_postgres() -> AsyncIterator[tuple[str, str, TcpProxy]]:
    async with postgres_schema() as url:
        dsn, schema = split_schema(url)
        host_port = dsn.split("@", 1)[1].split("/", 1)[0]
        host, port = host_port.split(":")
        proxy = await TcpProxy(host, int(port)).start()
        try:
            yield url.replace(host_port, f"127.0.0.1:{proxy.port}"), str(schema), proxy
        finally:
            await proxy.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def faults(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Faults]:
    async with contextlib.AsyncExitStack() as stack:
        harness: Faults
        if request.param == "memory":
            harness = Faults("memory", MemorySessionStore())
        elif request.param == "sqlite":
            harness = SqliteFaults(await SqliteSessionStore.open(tmp_path / "s.db", DEADLINE))
        else:
            url, schema, proxy = await stack.enter_async_context(proxied_postgres())
            harness = PostgresFaults(await open_store(url, DEADLINE), schema, proxy)
        stack.push_async_callback(harness.store.close)
        await harness.store.ensure(NewSession(KEY, "atlas", "main", Provenance("startup")))
        yield harness


# memory has no disk to fill, no connection to cut and nothing that can stop answering
ON_DISK = pytest.mark.parametrize("faults", ["sqlite", "postgres"], indirect=True)
NETWORKED = pytest.mark.parametrize("faults", ["postgres"], indirect=True)


async def acknowledged(store: SessionStore, count: int, prefix: str = "before") -> list[str]:
    """Append `count` messages; the contents the store acknowledged."""
    return [
        (await store.append_message(KEY, "user", f"{prefix}-{i}")).content for i in range(count)
    ]


async def transcript(store: SessionStore) -> list[str]:
    return [m.content for m in await store.history(KEY, limit=1000)]


async def fails_with(call: Awaitable[object], codes: set[str]) -> SessionGateError:
    """`call` raises a typed error with one of `codes`, well within a few deadlines."""
    with pytest.raises(SessionGateError) as caught:
        async with asyncio.timeout(DEADLINE * 10):  # a bound against hanging, not a benchmark
            await call
    assert caught.value.code in codes, caught.value.to_wire()
    return caught.value


async def test_text_a_backend_cannot_store_is_refused_alike(faults: Faults) -> None:
    store = faults.store
    before = await acknowledged(store, 2)
    long = "l" * (MAX_INDEXED_BYTES + 1)
    for call in (
        store.append_message(KEY, "user", "nul \x00 inside"),
        store.accept_message(KEY, "lone \ud800 surrogate", run_id="r1"),
        store.ensure(NewSession("agent:atlas:cron:x", "atlas", "cron", Provenance("cli"), long)),
        store.find_by_label("bad\x00label", None),
        store.find("agent:atlas:\x00"),
    ):
        error = await fails_with(call, {"INVALID_REQUEST"})
        assert error.http_status == 400
    assert await store.find("agent:atlas:cron:x") is None
    assert await store.find_run("r1") is None
    long_label = "é" * (MAX_INDEXED_BYTES // 2)  # at the limit: every backend stores it
    await store.ensure(NewSession("agent:atlas:cron:y", "atlas", "cron", Provenance("cli"),
                                  long_label))  # fmt: skip
    assert (await store.find_by_label(long_label, "atlas")) is not None
    after = await acknowledged(store, 1, "after")
    assert await transcript(store) == [*before, *after]
    assert faults.alive()


async def test_numbers_beyond_64_bits_are_contained(faults: Faults) -> None:
    store = faults.store
    before = await acknowledged(store, 3)
    assert [m.content for m in await store.history(KEY, before=2**80)] == before
    assert await store.history(KEY, before=-(2**80)) == []
    await fails_with(store.list_sessions(cursor="s" + "f" * 40), {"INVALID_REQUEST"})
    assert [s.key for s in (await store.list_sessions()).sessions] == [KEY]
    assert faults.alive()


@ON_DISK
async def test_a_full_disk_fails_writes_and_loses_nothing_acknowledged(faults: Faults) -> None:
    store = faults.store
    before = await acknowledged(store, 3)
    await faults.fill_disk()
    big = "x" * 200_000  # more than the pages left
    results = await asyncio.gather(
        *(store.append_message(KEY, "user", f"{i}{big}") for i in range(20)),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors, "a full disk must refuse some write"
    assert all(isinstance(e, SessionGateError) and e.code == "STORE_UNAVAILABLE" for e in errors)
    stored_while_full = [r.content for r in results if not isinstance(r, BaseException)]
    assert await store.find(KEY) is not None  # reads go on
    await fails_with(store.accept_message(KEY, big, run_id="full"), {"STORE_UNAVAILABLE"})
    await faults.free_disk()
    after = await acknowledged(store, 1, "after")
    assert await transcript(store) == [*before, *stored_while_full, *after]
    assert await store.find_run("full") is None
    assert faults.alive()


@ON_DISK
async def test_a_silent_store_answers_within_its_deadline(faults: Faults) -> None:
    store = faults.store
    before = await acknowledged(store, 3)
    await faults.silence()
    try:
        await fails_with(store.append_message(KEY, "user", "while silent"), FAULT_CODES)
        await fails_with(store.accept_message(KEY, "while silent", run_id="silent"), FAULT_CODES)
    finally:
        await faults.unsilence()
    after = await acknowledged(store, 1, "after")
    stored = await transcript(store)
    assert stored[:3] == before and stored[-1] == after[0]
    if faults.kind == "sqlite":  # a write whose caller gave up is rolled back, not stored later
        assert stored == [*before, *after]
    assert faults.alive()


@NETWORKED
async def test_a_cut_connection_is_unavailable_then_recovers(faults: Faults) -> None:
    assert isinstance(faults, PostgresFaults)
    store = faults.store
    before = await acknowledged(store, 3)
    await faults.proxy.cut()
    error = await fails_with(store.append_message(KEY, "user", "cut"), FAULT_CODES)
    assert error.retryable and "hint" in error.details
    await fails_with(store.find(KEY), FAULT_CODES)
    await faults.proxy.restore()
    after = await acknowledged(store, 1, "after")
    assert await transcript(store) == [*before, *after]


async def test_the_writer_thread_outlives_a_transaction_sqlite_rolled_back(
    tmp_path: Path,
) -> None:
    """SQLite may roll a whole transaction back by itself (disk full, I/O error): the
    savepoint is gone, every write in that transaction fails, the thread goes on."""
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (v TEXT)")
    thread = StoreThread("test-store", lambda: conn)

    def insert(db: sqlite3.Connection, value: str) -> str:
        db.execute("INSERT INTO t VALUES (?)", (value,))
        return value

    def lose_transaction(db: sqlite3.Connection) -> None:
        db.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL / SQLITE_IOERR
        raise sqlite3.OperationalError("database or disk is full")

    results = await asyncio.gather(
        thread.write(insert, "a"), thread.write(lose_transaction), thread.write(insert, "b"),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
    assert thread.alive
    assert await thread.write(insert, "c") == "c"
    assert await thread.read(lambda: conn.execute("SELECT v FROM t").fetchall()) == [("c",)]
    thread.stop()
    conn.close()


async def test_postgres_failures_are_one_line_with_the_servers_reason_and_a_hint() -> None:
    from tests.helpers import require_postgres

    await require_postgres()
    dsn, _ = split_schema(POSTGRES_URL)
    base = dsn.rsplit("/", 1)[0]
    cases: list[tuple[str, str]] = [
        (f"{base}/sessiongate_no_such_db", "createdb"),
        (base.replace("postgres@", "sessiongate_no_such_role@") + "/test", "role"),
        ("postgresql://postgres@127.0.0.1:1/test", "listens"),
    ]
    for url, hint in cases:
        with pytest.raises(SessionGateError) as caught:
            await PostgresSessionStore.open(url, DEADLINE * 4)
        error = caught.value
        assert error.code == "STORE_UNAVAILABLE", error.to_wire()
        assert "\n" not in error.message and error.details["reason"] in error.message
        assert hint in error.details["hint"], error.details


def _largest_file(folder: Path) -> int:
    return max(p.stat().st_size for p in folder.iterdir() if p.is_file())


def test_a_sqlite_gateway_whose_disk_fills_answers_503s_and_then_serves_again(
    tmp_path: Path,
) -> None:
    """A real `serve` process whose files may not grow (RLIMIT_FSIZE, set from outside
    with prlimit): every request is answered within its deadline, with a structured
    503 while full; once the limit is lifted it serves again, and every acknowledged
    message is still there."""
    state = tmp_path / "db"
    config = {
        "storage": {"url": f"sqlite:///{state / 'state.db'}", "timeoutSeconds": 1},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
    }
    with GatewayProcess(tmp_path, "full", config) as gw:
        assert gw.process is not None
        http = httpx.Client(base_url=gw.url, headers=gw.headers, timeout=10)

        def send(text: str) -> httpx.Response:
            args = {"sessionKey": "main", "message": text, "timeoutSeconds": 0}
            return http.post("/tools/invoke", json={"tool": "sessions_send", "args": args})

        acked = [f"before-{i}" for i in range(5) if send(f"before-{i}").status_code == 200]
        assert len(acked) == 5
        unlimited = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.prlimit(gw.process.pid, resource.RLIMIT_FSIZE,
                         (_largest_file(state), unlimited[1]))  # fmt: skip
        refused = []
        for i in range(40):
            text = f"full-{i}-" + "x" * 100_000
            response = send(text)  # answered (the client's own timeout would raise)
            if response.status_code == 200:
                acked.append(text)
                continue
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] in FAULT_CODES
            assert response.json()["error"]["retryable"] is True
            refused.append(i)
        assert refused, "a full disk must refuse writes"
        ready = httpx.get(f"{gw.url}/readyz", timeout=10)
        assert (ready.status_code, ready.json()) == (503, {"ok": False, "status": "not-ready"})
        resource.prlimit(gw.process.pid, resource.RLIMIT_FSIZE, unlimited)
        after = send("after")
        assert after.status_code == 200, after.text
        acked.append("after")
        assert httpx.get(f"{gw.url}/readyz", timeout=10).status_code == 200
        history = http.get("/v1/sessions/main/messages", params={"limit": 1000}).json()
        stored = [m["content"] for m in history["result"]["messages"] if m["role"] == "user"]
        assert stored == acked
        assert gw.process.poll() is None
        assert "running" not in _run_statuses_once_settled(state / "state.db")


def _run_statuses_once_settled(db: Path) -> dict[str, int]:
    """Run statuses once none is `running` (bounded: ends are retried, then interrupted)."""
    for _ in range(150):
        with contextlib.closing(sqlite3.connect(db)) as conn:
            statuses = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())
        if "running" not in statuses:
            return statuses
        time.sleep(0.1)
    raise AssertionError(f"runs still running: {statuses}")


async def test_a_run_whose_end_cannot_be_stored_is_interrupted_within_seconds(
    serve: Callable[..., Any], config_factory: Callable[..., Any]
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hook(request: Request) -> JSONResponse:
        arrived.set()
        await release.wait()
        return JSONResponse({"reply": "r" * 200_000})  # more pages than the store has left

    agents = [{"id": "atlas", "default": True},
              {"id": "slow", "model": "webhook", "webhook": {"url": ""}}]  # fmt: skip
    async with upstream(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as fake:
        agents[1]["webhook"] = {"url": f"{fake.url}/hook"}
        config = config_factory(agents={"list": agents}, storage__timeoutSeconds=1)
        async with serve(config) as gw:
            headers = {"authorization": f"Bearer {gw.token}"}
            async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as http:
                args = {"sessionKey": "agent:slow:main", "message": "hi", "timeoutSeconds": 20}
                body = {"tool": "sessions_send", "args": args}
                sending = asyncio.create_task(http.post("/tools/invoke", json=body))
                await arrived.wait()
                disk = SqliteFaults(gw.gateway.store)
                await disk.fill_disk()
                release.set()
                result = (await sending).json()["result"]
                assert result["status"] == "error", result
                assert result["error"]["code"] == "STORE_UNAVAILABLE"
                await disk.free_disk()
                store = gw.gateway.store
                for _ in range(150):  # the janitor sweeps every ~2 s
                    run = await store.find_run(result["runId"])
                    if run is not None and run.status != "running":
                        break
                    await asyncio.sleep(0.1)
                assert run is not None and run.status == "interrupted", run
                history = await store.history("agent:slow:main")
                assert [m.content for m in history] == ["hi"]
                assert all(not task.done() for task in gw.gateway._background)
