"""PostgreSQL `SessionStore`: one state shared by several gateway processes.

- Versioned migrations run at start-up under an advisory lock, so processes that
  start together apply each one exactly once.
- `ensure` is ``INSERT … ON CONFLICT DO NOTHING RETURNING``: one creator per key,
  whichever process it runs in.
- Appends bump ``sessions.last_seq`` under its row lock: per-session sequence
  numbers have no gaps even with writers in several processes.
- Each store holds a session-level advisory lock on its owner id for its whole
  life; a process whose lock is free is gone, and its running runs are marked
  interrupted by whoever notices first.
- `session_lock` serialises the runs of one session across processes.
- Run events reach the other gateway processes by NOTIFY; while none serves from the
  store (each janitor sweep looks; one that starts announces itself), none is published.
- A database that cannot be reached gives `StoreUnavailableError` quickly; the
  pool reconnects by itself when the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from sessiongate.errors import ConflictError, InvalidRequestError, StoreUnavailableError
from sessiongate.store import base, schema
from sessiongate.store.postgres_faults import CONNECTION_LOST, describe_dsn, translate
from sessiongate.store.postgres_group import Group
from sessiongate.store.postgres_intake import SKIP, WAIT, Intake, columns
from sessiongate.store.rows import (
    MESSAGE_COLUMNS,
    RUN_COLUMNS,
    SESSION_COLUMNS,
    TOMBSTONE_COLUMNS,
    dump_meta,
    insert_message,
    insert_session,
    message_from_row,
    message_values,
    readable_sessions,
    run_from_row,
    session_from_row,
    session_values,
    tombstone_from_row,
)

__all__ = ["PostgresSessionStore", "split_schema"]

INSERT_SESSION = insert_session("postgresql")
INSERT_MESSAGE = insert_message("postgresql")

T = TypeVar("T")

MIGRATION_LOCK = 0x5E55_10_6A7E  # any constant shared by every sessiongate process
# Creating a key and deleting it take this transaction lock on the key first: a creation
# then always sees a tombstone committed before it (ON CONFLICT alone would not: it
# waits for the deleting transaction, then inserts under its earlier snapshot).
KEY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 2))"
MAX_NOTIFY_BYTES = 7000
# what a process that starts serving publishes; no listener has this session key, so a
# process that does not know the `serving` mark delivers it to nobody
SERVING_EVENT = {"event": "gateway.serving", "sessionKey": ""}

APPEND = f"""
WITH s AS (
    UPDATE sessions SET last_seq = last_seq + 1, updated_at = $1
    WHERE key = $2 AND ($8::text IS NULL OR incarnation = $8) RETURNING last_seq
), m AS (
    INSERT INTO messages ({MESSAGE_COLUMNS})
    SELECT $2, last_seq, $3, $4, $5, $6, $7 FROM s RETURNING seq
){{run_change}}
SELECT seq FROM m
"""
COMPLETE_RUN = f""", r AS (
    UPDATE runs SET status = '{base.RunStatus.COMPLETED.value}', finished_at = $1
    WHERE run_id = $5 AND EXISTS (SELECT 1 FROM s)
)"""
REFUSAL = f"""
SELECT (SELECT alias_of FROM sessions WHERE key = $1) AS alias_of,
       EXISTS (SELECT 1 FROM sessions WHERE key = $1) AS session_exists,
       t.* FROM (SELECT 1) AS one
LEFT JOIN (SELECT {TOMBSTONE_COLUMNS} FROM tombstones WHERE key = $1) AS t ON true
"""


TOMBSTONE_UPSERT = f"""
INSERT INTO tombstones ({TOMBSTONE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 1)
ON CONFLICT (key) DO UPDATE SET agent_id = excluded.agent_id,
    incarnation = excluded.incarnation, deleted_at = excluded.deleted_at,
    deleted_by = excluded.deleted_by, reason = excluded.reason,
    deletions = tombstones.deletions + 1
RETURNING {TOMBSTONE_COLUMNS}
"""
ARCHIVE_MESSAGES = f"""
INSERT INTO archived_messages ({MESSAGE_COLUMNS}, incarnation, archived_at)
SELECT {MESSAGE_COLUMNS}, $2, $3 FROM messages WHERE session_key = $1
"""
INTERRUPT_FOR_RESET = f"""
UPDATE runs SET status = '{base.RunStatus.INTERRUPTED.value}', finished_at = $1,
    error = 'the session was reset during the run'
WHERE session_key = $2 AND status = '{base.RunStatus.RUNNING.value}'
"""
RESET_SESSION = f"""
UPDATE sessions SET incarnation = $1, last_seq = 0, status = '{base.SessionStatus.ACTIVE.value}',
    updated_at = $2
WHERE key = $3 RETURNING {SESSION_COLUMNS}
"""


def split_schema(url: str) -> tuple[str, str | None]:
    """Take sessiongate's own ``?schema=name`` out of a postgresql:// URL."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "schema"])
    return urllib.parse.urlunsplit(parts._replace(query=rest)), schema


def _count(status: str) -> int:
    """The row count of a command status (``DELETE 3``)."""
    return int(status.split()[-1])


def _discard(conn: asyncpg.Connection) -> None:
    """Close a connection at once, without a goodbye to a server that may not answer."""
    with contextlib.suppress(asyncpg.InterfaceError):  # the pool already took it back
        conn.terminate()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is: no reset statement, a round trip per call saved.

    asyncpg's default runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on
    every release. Nothing here leaves session state on a pooled connection: statements run
    without SET/LISTEN/cursors, a lane's advisory lock is released explicitly or its
    connection closed (`session_lock`), and the sweep takes transaction-scoped locks only.
    An open transaction is still rolled back by asyncpg before this is called.
    """


class PostgresSessionStore(base.SessionStore):
    """Sessions, transcripts and runs in PostgreSQL, shared by every process that opens it."""

    shared = True
    answers_in_one_write = True  # one statement, which never waits for another process's run

    def __init__(self, dsn: str, schema: str | None, timeout: float) -> None:
        self.dsn = dsn
        self.schema = schema
        self.timeout = timeout
        self.where = describe_dsn(dsn)
        self.owner = f"pg:{uuid.uuid4()}"
        self._pool: asyncpg.Pool | None = None
        self._lane_pool: asyncpg.Pool | None = None
        self._owner_conn: asyncpg.Connection | None = None
        self._events_conn: asyncpg.Connection | None = None
        self._event_listener: Callable[[dict[str, Any]], None] | None = None
        self._serving = False  # `mark_serving` was called
        self._alone = False  # no other gateway process serves: events are not published
        self._peers_heard = 0  # messages heard from other processes
        self._intake: Group[Intake, tuple[int | None, bool]] = Group(
            self._intake_group, timeout, self._fault
        )

    @classmethod
    async def open(
        cls, url: str, deadline: float = base.DEFAULT_TIMEOUT_SECONDS
    ) -> PostgresSessionStore:
        """Connect, create the schema if asked, migrate, and claim an owner id."""
        dsn, schema = split_schema(url)
        store = cls(dsn, schema, deadline)
        try:
            await store._migrate()
            store._pool = await store._create_pool(min_size=1, max_size=20)
            store._lane_pool = await store._create_pool(min_size=0, max_size=32)
            await store._within_deadline(store._claim_owner())
        except Exception as exc:
            await store.close()
            raise store._fault(exc) from exc
        return store

    def _fault(self, exc: BaseException) -> Exception:
        return translate(exc, self.where, self.timeout)

    @property
    def _settings(self) -> dict[str, str]:
        return {"search_path": self.schema} if self.schema else {}

    async def _create_pool(self, *, min_size: int, max_size: int) -> asyncpg.Pool:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            self.dsn, min_size=min_size, max_size=max_size, timeout=self.timeout,
            command_timeout=self.timeout, server_settings=self._settings, reset=_keep_session,
        )  # fmt: skip
        return pool

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn, timeout=self.timeout, server_settings=self._settings
        )
        return conn

    async def _within_deadline(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except Exception as exc:
            raise self._fault(exc) from exc

    async def _migrate(self) -> None:
        conn = await self._connect()
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                if self.schema:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS sessiongate_migrations ("
                    " version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                done = {
                    r[0] for r in await conn.fetch("SELECT version FROM sessiongate_migrations")
                }
                for version, statements in schema.pending(done, "postgresql"):
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO sessiongate_migrations (version) VALUES ($1)", version
                    )
        finally:
            await conn.close()

    async def _claim_owner(self) -> None:
        if self._owner_conn is not None and not self._owner_conn.is_closed():
            return
        self._owner_conn = await self._connect()
        await self._owner_conn.execute(
            "SELECT pg_advisory_lock(hashtextextended($1, 0))", self.owner
        )
        if self._serving:  # a new connection: named again, so that others see it serves
            await self._announce_serving(self._owner_conn)

    def _open_pool(self, pool: asyncpg.Pool | None) -> asyncpg.Pool:
        if pool is None:
            raise StoreUnavailableError(
                "PostgreSQL store is closed", details={"store": "postgresql"}
            )
        return pool

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `fn` on a pooled connection; its answer or a typed error within the deadline.

        The call runs in the caller's task (no task of its own per statement): when the
        deadline passes, its connection is closed at once (its statement may or may not
        have committed) and the caller is answered without waiting for the network.
        """
        pool = self._open_pool(self._pool)
        conn: asyncpg.Connection | None = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = await pool.acquire()
                return await fn(conn)
        except asyncio.CancelledError:
            if conn is not None:
                _discard(conn)  # never reuse a connection in an unknown state
            raise
        except Exception as exc:
            if conn is not None and isinstance(exc, CONNECTION_LOST):  # a deadline included
                _discard(conn)
            raise self._fault(exc) from exc
        finally:
            if conn is not None:
                await pool.release(conn)

    async def _write(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async def in_transaction(conn: asyncpg.Connection) -> T:
            async with conn.transaction():
                return await fn(conn)

        return await self._run(in_transaction)

    async def _find(self, key: str) -> base.SessionRecord | None:
        row = await self._run(
            lambda c: c.fetchrow(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE key = $1", key)
        )
        return session_from_row(row) if row else None

    async def _find_by_label(self, label: str, agent_id: str | None) -> base.SessionRecord | None:
        sql = (
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE label = $1"
            f" AND status = '{base.SessionStatus.ACTIVE.value}'"
            " AND ($2::text IS NULL OR agent_id = $2) ORDER BY id DESC LIMIT 1"
        )
        row = await self._run(lambda c: c.fetchrow(sql, label, agent_id))
        return session_from_row(row) if row else None

    async def _ensure(self, new: base.NewSession) -> tuple[base.SessionRecord, bool]:
        insert = f"{INSERT_SESSION} RETURNING {SESSION_COLUMNS}"
        args = session_values(new.created(base.now()))
        select = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE key = $1"

        async def ensure(conn: asyncpg.Connection) -> tuple[base.SessionRecord, bool]:
            existing = await conn.fetchrow(select, new.key)
            if existing is not None:  # the common case: no lock, no transaction
                return session_from_row(existing), False
            async with conn.transaction():
                await conn.execute(KEY_LOCK, new.key)
                tombstone = await self._tombstone(conn, new.key)
                if base.refused_over_tombstone(new, tombstone):
                    existing = await conn.fetchrow(select, new.key)
                    if existing is None:
                        assert tombstone is not None
                        raise base.deleted(new.key, tombstone)
                    return session_from_row(existing), False
                row = await conn.fetchrow(insert, *args)
                if row is not None:
                    return session_from_row(row), True
                return session_from_row(await conn.fetchrow(select, new.key)), False

        return await self._run(ensure)

    async def _list(
        self, agent_id: str | None, kind: str | None, limit: int, after: int | None
    ) -> base.SessionPage:
        filters = [("agent_id", agent_id), ("kind", kind), ("id <", after)]
        active = [(column, value) for column, value in filters if value is not None]
        # only the filters in use, so the planner picks the matching (agent_id, kind, id) index
        where = " AND ".join(
            f"{column} ${n}" if column.endswith("<") else f"{column} = ${n}"
            for n, (column, _) in enumerate(active, start=1)
        )
        sql = (
            f"SELECT {SESSION_COLUMNS} FROM sessions {'WHERE ' + where if where else ''}"
            f" ORDER BY id DESC LIMIT ${len(active) + 1}"
        )
        values = [value for _, value in active]
        rows = await self._run(lambda c: c.fetch(sql, *values, limit + 1))
        next_cursor = base.encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
        return base.SessionPage(readable_sessions(rows[:limit]), next_cursor)

    async def _append(self, new: base.NewMessage, run_change: str = "") -> base.MessageRecord:
        """One statement (so one round trip, atomic): bump last_seq, insert the message,
        and optionally complete its run.

        With `incarnation`, only into that incarnation: a delete or reset holds the
        session's row while it works, and this statement re-checks the row after
        waiting for it, so a write never lands in a fresh (or re-created) session.
        """
        stamp, key, incarnation = base.now(), new.key, new.incarnation
        message = new.stored(0, stamp)
        args: list[Any] = [stamp, key, new.role, new.content, new.run_id, message.created_at,
                           dump_meta(new.meta), incarnation]  # fmt: skip
        sql = APPEND.format(run_change=run_change)
        seq = await self._run(lambda c: c.fetchval(sql, *args))
        if seq is None:
            raise await self._refusal(key, incarnation)
        return new.stored(seq, stamp)

    async def _refusal(self, key: str, incarnation: str | None) -> Exception:
        """Why a write for `key` (in `incarnation`, if given) found no session to go into."""
        row = await self._run(lambda c: c.fetchrow(REFUSAL, key))
        tombstone = tombstone_from_row(row if row["key"] is not None else None)
        return base.refusal(key, incarnation, exists=row["session_exists"], tombstone=tombstone,
                       alias_of=row["alias_of"])  # fmt: skip

    async def _history(self, key: str, limit: int, before: int | None) -> list[base.MessageRecord]:
        sql = (
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_key = $1"
            " AND ($2::bigint IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3"
        )
        rows = await self._run(lambda c: c.fetch(sql, key, before, limit))
        return [message_from_row(r) for r in reversed(rows)]

    async def _update(self, key: str, column: str, value: str | None) -> None:
        sql = f"UPDATE sessions SET {column} = $1, updated_at = $2 WHERE key = $3"
        status = await self._run(lambda c: c.execute(sql, value, base.now(), key))
        if status.endswith(" 0"):
            raise await self._refusal(key, None)

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """A session-level advisory lock on a connection of its own, tried once."""
        pool = self._open_pool(self._lane_pool)
        conn = await self._within_deadline(pool.acquire(timeout=self.timeout))
        try:
            lock = f"{self.schema or 'public'}:{name}"
            held = await self._within_deadline(
                conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 3))", lock)
            )
            try:
                yield bool(held)
            finally:
                if held:
                    await self._within_deadline(
                        conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 3))", lock)
                    )
        finally:
            await pool.release(conn)

    async def _start_run(self, conn: asyncpg.Connection, run_id: str, key: str) -> base.RunRecord:
        run = base.RunRecord(run_id, key, base.RunStatus.RUNNING, base.now(), None, None)
        await conn.execute(
            "INSERT INTO runs (run_id, session_key, status, created_at, owner)"
            " VALUES ($1, $2, $3, $4, $5)",
            run_id, key, run.status, run.created_at, self.owner,
        )  # fmt: skip
        return run

    async def start_run(self, run_id: str, session_key: str) -> base.RunRecord:
        return await self._run(lambda c: self._start_run(c, run_id, session_key))

    @staticmethod
    async def _finish_run(
        conn: asyncpg.Connection, run_id: str, status: str, error: str | None
    ) -> None:
        await conn.execute(
            "UPDATE runs SET status = $1, finished_at = $2, error = $3 WHERE run_id = $4",
            status, base.now(), error, run_id,
        )  # fmt: skip

    async def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        await self._run(lambda c: self._finish_run(c, run_id, status, error))

    async def _accept(self, new: base.NewMessage) -> tuple[base.MessageRecord, base.RunRecord]:
        row = Intake(new, base.now())
        seq, _ = await self._take_in(row)
        assert seq is not None  # a row without a reply never waits for the lane
        run = base.RunRecord(
            str(new.run_id), new.key, base.RunStatus.RUNNING, row.created_at, None, None
        )
        return new.stored(seq, row.stamp), run

    async def _accept_answered(
        self, new: base.NewMessage, reply: base.NewMessage
    ) -> tuple[base.MessageRecord, base.RunRecord, base.MessageRecord] | None:
        """One statement (grouped with concurrent sends): the message, its run completed, the
        reply; None, storing nothing, while another process runs a run of the session."""
        row = Intake(new, base.now(), reply.content)
        seq, _ = await self._take_in(row)
        if seq is None:
            return None
        run = base.RunRecord(str(new.run_id), new.key, base.RunStatus.COMPLETED,
                             row.created_at, row.stamp, None)  # fmt: skip
        return new.stored(seq, row.stamp), run, reply.stored(seq + 1, row.stamp)

    async def _take_in(self, row: Intake) -> tuple[int | None, bool]:
        """The row's sequence number (None: its lane is held elsewhere) via the intake group,
        or alone where the group could not write it."""
        seq, lane_free = await self._intake.submit(row.new.key, row)
        if seq is not None or not lane_free:
            return seq, lane_free
        return await self._intake_alone(row)

    async def _intake_group(self, rows: list[Intake]) -> list[tuple[int | None, bool]]:
        """Several rows in one statement (`postgres_intake.SKIP`); (None, True) for a row that
        must be written alone: its session locked, missing, moved or reset — or any row,
        when the statement refused one (a duplicate run id fails it whole)."""
        try:
            found = await self._run(lambda c: c.fetch(SKIP, *columns(rows), self.owner))
        except (ConflictError, InvalidRequestError):
            return [(None, True)] * len(rows)
        return [(r["seq"], r["lane_free"]) for r in found]

    async def _intake_alone(self, row: Intake) -> tuple[int | None, bool]:
        """One row, waiting for its session if another writer holds it; its refusal if the
        session cannot take it (missing, deleted, reset since, moved)."""
        [found] = await self._run(lambda c: c.fetch(WAIT, *columns([row]), self.owner))
        seq, lane_free = found["seq"], found["lane_free"]
        if seq is None and lane_free:
            raise await self._refusal(row.new.key, row.new.incarnation)
        return seq, lane_free

    async def _complete(self, new: base.NewMessage) -> base.MessageRecord:
        return await self._append(new, run_change=COMPLETE_RUN)

    async def _tombstone(self, conn: asyncpg.Connection, key: str) -> base.Tombstone | None:
        sql = f"SELECT {TOMBSTONE_COLUMNS} FROM tombstones WHERE key = $1"
        return tombstone_from_row(await conn.fetchrow(sql, key))

    async def _find_tombstone(self, key: str) -> base.Tombstone | None:
        return await self._run(lambda c: self._tombstone(c, key))

    async def _import_tombstone(self, tombstone: base.Tombstone) -> bool:
        t = tombstone
        sql = (
            f"INSERT INTO tombstones ({TOMBSTONE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (key) DO NOTHING"
        )
        args = (t.key, t.agent_id, t.incarnation, t.deleted_at, t.deleted_by, t.reason, t.deletions)
        status = await self._run(lambda c: c.execute(sql, *args))
        return not status.endswith(" 0")

    async def _list_tombstones(self, limit: int) -> list[base.Tombstone]:
        sql = f"SELECT {TOMBSTONE_COLUMNS} FROM tombstones ORDER BY deleted_at DESC LIMIT $1"
        rows = await self._run(lambda c: c.fetch(sql, limit))
        return [t for t in map(tombstone_from_row, rows) if t is not None]

    async def _locked_session(self, conn: asyncpg.Connection, key: str) -> base.SessionRecord:
        """In a transaction: take the key's lock and its row's lock, so every write to it
        waits; the session, or the error for a key with no session."""
        await conn.execute(KEY_LOCK, key)
        row = await conn.fetchrow(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE key = $1 FOR UPDATE", key
        )
        if row is None:
            tombstone = await self._tombstone(conn, key)
            raise base.deleted(key, tombstone) if tombstone is not None else base.missing(key)
        return session_from_row(row)

    async def _delete(self, key: str, by: str | None, reason: str | None) -> base.Erasure:

        async def erase(conn: asyncpg.Connection) -> base.Erasure:
            record = await self._locked_session(conn, key)
            counts = [
                _count(await conn.execute(f"DELETE FROM {table} WHERE session_key = $1", key))
                for table in ("messages", "runs", "archived_messages")
            ]
            await conn.execute("DELETE FROM sessions WHERE key = $1", key)
            row = await conn.fetchrow(TOMBSTONE_UPSERT, key, record.agent_id,
                                      record.incarnation, base.now(), by, reason)  # fmt: skip
            tombstone = tombstone_from_row(row)
            assert tombstone is not None
            return base.Erasure(tombstone, counts[0], counts[1], counts[2])

        return await self._write(erase)

    async def _reset(
        self, key: str, archive: bool, by: str | None, reason: str | None
    ) -> base.ResetOutcome:

        async def reset(conn: asyncpg.Connection) -> base.ResetOutcome:
            record = await self._locked_session(conn, key)
            stamp = base.now()
            archived = 0
            if archive:
                status = await conn.execute(ARCHIVE_MESSAGES, key, record.incarnation, stamp)
                archived = _count(status)
            status = await conn.execute("DELETE FROM messages WHERE session_key = $1", key)
            removed = _count(status)
            status = await conn.execute(INTERRUPT_FOR_RESET, stamp, key)
            row = await conn.fetchrow(RESET_SESSION, base.new_incarnation(), stamp, key)
            fresh = session_from_row(row)
            return base.ResetOutcome(fresh, archived, removed - archived, _count(status))

        return await self._write(reset)

    async def find_run(self, run_id: str) -> base.RunRecord | None:
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"
        row = await self._run(lambda c: c.fetchrow(sql, run_id))
        return run_from_row(row) if row else None

    async def heal(self) -> None:
        """Reclaim the owner lock and the event listener if their connections were lost
        (the pool reconnects by itself; these two long-lived connections do not); then
        see whether another gateway process serves (`publish_events`)."""
        self._alone = False  # until this says otherwise: a failure leaves events shared
        await self._within_deadline(self._claim_owner())
        await self._ensure_listening()
        if self._event_listener is not None:
            heard = self._peers_heard
            elsewhere = await self.served_elsewhere()
            self._alone = not elsewhere and self._peers_heard == heard

    async def interrupt_running(self, *, own: bool = False) -> int:
        async def sweep(conn: asyncpg.Connection) -> int:
            owners = await conn.fetch(
                f"SELECT DISTINCT owner FROM runs WHERE status = '{base.RunStatus.RUNNING.value}'"
            )
            total = 0
            for owner in (row["owner"] for row in owners):
                if owner != self.owner or own:
                    total += await self._interrupt_if_gone(conn, owner)
            return total

        return await self._write(sweep)

    async def _interrupt_if_gone(self, conn: asyncpg.Connection, owner: str | None) -> int:
        mine = owner == self.owner
        if not mine and owner is not None:
            alive = not await conn.fetchval(  # held to the end of the sweep's transaction
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", owner
            )
            if alive:
                return 0
        status = await conn.execute(
            f"UPDATE runs SET status = '{base.RunStatus.INTERRUPTED.value}', finished_at = $1,"
            " error = 'the gateway process stopped during the run'"
            f" WHERE status = '{base.RunStatus.RUNNING.value}' AND owner IS NOT DISTINCT FROM $2",
            base.now(),
            owner,
        )
        return int(status.split()[-1])

    @contextlib.asynccontextmanager
    async def session_lock(self, key: str) -> AsyncIterator[None]:
        """Hold the cross-process lane of `key` (runs of one session never overlap).

        Waiting for the lane has no deadline (another process's run may take long);
        releasing it does: a connection that cannot release is closed, which
        releases the lock on the server as well.
        """
        pool = self._open_pool(self._lane_pool)
        conn = await self._within_deadline(pool.acquire(timeout=self.timeout))
        try:
            try:
                await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 1))", key)
            except BaseException as exc:  # the lock may have been granted as the wait ended:
                _discard(conn)  # closing the connection releases it on the server
                if isinstance(exc, Exception):
                    raise self._fault(exc) from exc
                raise
            try:
                yield
            finally:
                await self._unlock_lane(conn, key)
        finally:
            await pool.release(conn)

    async def _unlock_lane(self, conn: asyncpg.Connection, key: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 1))", key)
        except (asyncio.CancelledError, Exception):
            _discard(conn)
            raise

    async def _import(
        self, session: base.SessionRecord, messages: list[base.MessageRecord], over_tombstone: bool
    ) -> bool:
        async def insert(conn: asyncpg.Connection) -> bool:
            await conn.execute(KEY_LOCK, session.key)
            if not over_tombstone and await self._tombstone(conn, session.key) is not None:
                return False
            status = await conn.execute(INSERT_SESSION, *session_values(session))
            if status.endswith(" 0"):
                return False
            await conn.executemany(INSERT_MESSAGE, [message_values(m) for m in messages])
            return True

        return await self._write(insert)

    @property
    def _channel(self) -> str:
        return f"sessiongate_events_{self.schema or 'public'}"[:63]

    def _payload(self, event: dict[str, Any]) -> str:
        payload = json.dumps({"origin": self.owner, "event": event}, separators=(",", ":"))
        if len(payload.encode()) > MAX_NOTIFY_BYTES:  # NOTIFY payloads are small: send the gist
            gist = {k: v for k, v in event.items() if k not in ("reply", "delta", "error")}
            payload = json.dumps({"origin": self.owner, "event": {**gist, "truncated": True}})
        return payload

    async def publish_events(self, events: list[dict[str, Any]]) -> None:
        """One statement for the batch; nothing while no other gateway process serves from
        this store (`heal` looks every janitor sweep; one that starts says so at once)."""
        if self._alone:
            return
        payloads = [self._payload(event) for event in events]
        sql = (
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n"
        )
        await self._run(lambda c: c.execute(sql, self._channel, payloads))

    async def listen_events(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._event_listener = listener
        await self._ensure_listening()

    async def _ensure_listening(self) -> None:
        if self._event_listener is None:
            return
        if self._events_conn is not None and not self._events_conn.is_closed():
            return
        conn = await self._within_deadline(self._connect())
        self._events_conn = conn
        await self._within_deadline(conn.add_listener(self._channel, self._on_notify))

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return  # not sessiongate's (someone else notifying on the channel)
        if not isinstance(message, dict) or message.get("origin") in (None, self.owner):
            return
        self._peers_heard += 1  # another process is there: share events with it
        self._alone = False
        if self._event_listener is not None and "serving" not in message:
            self._event_listener(message["event"])

    async def count_sessions(self) -> int:
        return int(await self._run(lambda c: c.fetchval("SELECT count(*) FROM sessions")))

    async def count_by_origin(self) -> dict[str, int]:
        sql = "SELECT origin, count(*) AS count FROM sessions GROUP BY origin"
        rows = await self._run(lambda c: c.fetch(sql))
        return {row["origin"]: int(row["count"]) for row in rows}

    async def aliases_of(self, key: str) -> list[str]:
        sql = "SELECT key FROM sessions WHERE alias_of = $1 ORDER BY key"
        rows = await self._run(lambda c: c.fetch(sql, key))
        return [row["key"] for row in rows]

    async def _close_pool(self, pool: asyncpg.Pool) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await pool.close()
        except (TimeoutError, *CONNECTION_LOST):
            pool.terminate()  # a silent server: do not wait for goodbyes

    @property
    def _serving_name(self) -> str:
        return f"sessiongate serve {self.schema or 'public'}"[:63]

    async def mark_serving(self) -> None:
        """Name this gateway's owner connection so that others see it serves (pg_stat_activity),
        and tell the processes listening that one more serves (they share events again)."""
        conn = self._owner_conn
        assert conn is not None
        self._serving = True
        await self._within_deadline(self._announce_serving(conn))

    async def _announce_serving(self, conn: asyncpg.Connection) -> None:
        hello = json.dumps({"origin": self.owner, "serving": True, "event": SERVING_EVENT})
        sql = "SELECT set_config('application_name', $1, false), pg_notify($2, $3)"
        await conn.execute(sql, self._serving_name, self._channel, hello)

    async def served_elsewhere(self) -> bool:
        owner = self._owner_conn
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = $1 AND pid <> pg_backend_pid() AND pid <> $2"
        )
        own = owner.get_server_pid() if owner is not None and not owner.is_closed() else 0
        return bool(await self._run(lambda c: c.fetchval(sql, self._serving_name, own)))

    async def ping(self) -> None:
        """A cheap round trip; a read-only server (a standby) cannot take writes."""
        if await self._run(lambda c: c.fetchval("SELECT pg_is_in_recovery()")):
            raise StoreUnavailableError(
                f"PostgreSQL at {self.where} is read-only (a standby)",
                details={"store": "postgresql", "hint": "point storage.url at the primary"},
            )

    async def open_page_session(self, session_id: str, expires_at: float) -> None:
        async def write(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.execute("DELETE FROM page_sessions WHERE expires_at <= $1", base.now())
                await conn.execute(
                    "INSERT INTO page_sessions (id, expires_at) VALUES ($1, $2)",
                    session_id, expires_at,
                )  # fmt: skip

        await self._run(write)

    async def page_session_open(self, session_id: str) -> bool:
        sql = "SELECT 1 FROM page_sessions WHERE id = $1 AND expires_at > $2"
        return await self._run(lambda c: c.fetchval(sql, session_id, base.now())) is not None

    async def close_page_session(self, session_id: str | None) -> None:
        if session_id is None:
            await self._run(lambda c: c.execute("DELETE FROM page_sessions"))
        else:
            sql = "DELETE FROM page_sessions WHERE id = $1"
            await self._run(lambda c: c.execute(sql, session_id))

    async def close(self) -> None:
        self._intake.close()
        for pool in (self._pool, self._lane_pool):
            if pool is not None:
                await self._close_pool(pool)
        for conn in (self._owner_conn, self._events_conn):
            if conn is not None:
                conn.terminate()  # closing politely could wait on a silent server
        self._pool = self._lane_pool = self._owner_conn = self._events_conn = None
