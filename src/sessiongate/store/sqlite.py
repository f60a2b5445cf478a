"""SQLite `SessionStore`, the embedded default.

WAL journal; one row per session and per message, indexed, never a whole-file
rewrite. All SQL runs on one dedicated thread, so each store call is a single
thread hop that executes its statements as one unit (a transaction where it
writes) while the event loop stays free.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from sessiongate.errors import (
    ConflictError,
    InvalidRequestError,
    SessionGateError,
    StoreUnavailableError,
)
from sessiongate.private_files import touch_private
from sessiongate.store import schema
from sessiongate.store.base import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_SEQ,
    Erasure,
    MessageRecord,
    NewSession,
    ResetOutcome,
    RunRecord,
    RunStatus,
    SessionPage,
    SessionRecord,
    Tombstone,
    check_import,
    check_message,
    check_new_session,
    check_storable,
    clamp_seq,
    decode_cursor,
    deleted,
    encode_cursor,
    missing,
    moved,
    new_incarnation,
    now,
    refused_over_tombstone,
    reset_since,
    store_timeout,
)
from sessiongate.store.rows import (
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    TOMBSTONE_COLUMNS,
    dump_ancestors,
    dump_meta,
    local_owner,
    message_from_row,
    owner_is_dead_here,
    session_from_row,
    tombstone_from_row,
)
from sessiongate.store.sqlite_thread import StoreThread

__all__ = ["SqliteSessionStore"]

T = TypeVar("T")


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the pending migrations in one transaction; the version is PRAGMA user_version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        steps = schema.pending(range(1, version + 1), "sqlite")
        for _, statements in steps:
            for statement in statements:
                conn.execute(statement)
        if steps:
            conn.execute(f"PRAGMA user_version = {steps[-1][0]}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def sqlite_path(url: str) -> Path:
    """The file of a SQLAlchemy-style sqlite URL (sqlite:///rel.db, sqlite:////abs.db)."""
    raw = url.removeprefix("sqlite:///")
    return Path(raw).expanduser()


class SqliteSessionStore:
    """A SQLite file shared by the calls of one process (and safely by several)."""

    shared = False

    def __init__(self, path: Path, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.path = path
        self.timeout = timeout
        self._thread = StoreThread("sessiongate-sqlite", lambda: self._db)
        self.owner = local_owner()
        self._conn: sqlite3.Connection | None = None
        self._serving_fd: int | None = None

    @classmethod
    async def open(
        cls, path: Path, deadline: float = DEFAULT_TIMEOUT_SECONDS
    ) -> SqliteSessionStore:
        """Open (creating the file, 0600 in a 0700 folder, and the schema if needed)."""
        store = cls(path, deadline)
        try:
            await store._call(store._connect)
        except BaseException:
            store._thread.stop()
            raise
        return store

    def _connect(self) -> None:
        try:
            touch_private(self.path)  # SQLite gives its -wal and -shm files the same mode
        except OSError as exc:
            raise sqlite3.OperationalError(f"cannot create {self.path}: {exc}") from exc
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # a writer waits for another process's lock only as long as its caller waits
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -32000")  # 32 MB of pages: hot index paths stay hot
        conn.execute("PRAGMA secure_delete = ON")  # an erased transcript leaves no readable page
        try:
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read (or a call that manages its own statements) on the store thread."""
        return await self._guard(self._thread.read(fn, *args))

    async def _call_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(db, *args)` in a transaction, possibly shared with other writes."""
        return await self._guard(self._thread.write(fn, *args))

    async def _guard(self, call: asyncio.Future[T]) -> T:
        """Await a store-thread call within the deadline; its faults become typed errors.

        The deadline cancels the call's future itself (the thread then skips or rolls
        back the call): a timer per call, cheaper than an `asyncio.timeout` scope.
        """
        expiry = call.get_loop().call_later(self.timeout, call.cancel)
        try:
            result: T = await call
        except SessionGateError:
            raise
        except asyncio.CancelledError:
            if not call.cancelled() or _task_cancelling():
                raise  # the caller itself was cancelled, not the call's deadline
            raise store_timeout("sqlite", self.timeout) from None
        except (OverflowError, UnicodeError, sqlite3.DataError) as exc:
            raise InvalidRequestError(
                f"a value cannot be stored: {exc}", details={"store": "sqlite"}
            ) from exc
        except sqlite3.IntegrityError as exc:  # e.g. a run id that is taken: nothing stored
            raise ConflictError(f"the store refused a duplicate: {exc}", details={}) from exc
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        finally:
            expiry.cancel()
        return result

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailableError:
        reason = str(exc) if self._thread.alive else "its thread has stopped"
        return StoreUnavailableError(
            f"SQLite store {self.path} is unavailable: {reason}",
            details={
                "store": "sqlite",
                "reason": reason,
                "hint": "check free disk space and the permissions of the state folder",
            },
        )

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailableError("SQLite store is closed", details={"store": "sqlite"})
        return self._conn

    def _find(self, key: str) -> SessionRecord | None:
        row = self._db.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE key = ?", (key,)
        ).fetchone()
        return session_from_row(row) if row else None

    async def find(self, key: str) -> SessionRecord | None:
        check_storable("sessionKey", key, indexed=True)
        return await self._call(self._find, key)

    def _find_by_label(self, label: str, agent_id: str | None) -> SessionRecord | None:
        sql = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE label = ? AND status = 'active'"
        params: list[Any] = [label]
        if agent_id:
            sql += " AND agent_id = ?"
            params.append(agent_id)
        row = self._db.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return session_from_row(row) if row else None

    async def find_by_label(self, label: str, agent_id: str | None) -> SessionRecord | None:
        check_storable("label", label, indexed=True)
        check_storable("agentId", agent_id, indexed=True)
        return await self._call(self._find_by_label, label, agent_id)

    def _ensure(self, db: sqlite3.Connection, new: NewSession) -> tuple[SessionRecord, bool]:
        existing = self._find(new.key)
        if existing is not None:
            return existing, False
        tombstone = self._find_tombstone(new.key)
        if refused_over_tombstone(new, tombstone):
            assert tombstone is not None
            raise deleted(new.key, tombstone)
        stamp = now()
        p = new.provenance
        row = db.execute(
            f"INSERT INTO sessions (key, agent_id, kind, label, origin, entry_point, caller_key,"
            f" parent_key, ancestors, created_at, updated_at, incarnation)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {SESSION_COLUMNS}",
            (
                new.key,
                new.agent_id,
                new.kind,
                new.label,
                p.origin,
                p.entry_point,
                p.caller_key,
                p.parent_key,
                dump_ancestors(p.ancestors),
                stamp,
                stamp,
                new_incarnation(),
            ),
        ).fetchone()
        return session_from_row(row), True

    async def ensure(self, new: NewSession) -> tuple[SessionRecord, bool]:
        check_new_session(new)
        return await self._call_write(self._ensure, new)

    def _list(
        self, agent_id: str | None, kind: str | None, limit: int, after: int | None
    ) -> SessionPage:
        filters = [("agent_id = ?", agent_id), ("kind = ?", kind), ("id < ?", after)]
        active = [(clause, value) for clause, value in filters if value is not None]
        where = "WHERE " + " AND ".join(c for c, _ in active) if active else ""
        params = [value for _, value in active]
        rows = self._db.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions {where} ORDER BY id DESC LIMIT ?",
            (*params, limit + 1),
        ).fetchall()
        cursor = encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
        return SessionPage([session_from_row(r) for r in rows[:limit]], cursor)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        return await self._call(self._list, agent_id, kind, limit, decode_cursor(cursor))

    def _append(
        self,
        db: sqlite3.Connection,
        key: str,
        role: str,
        content: str,
        run_id: str | None,
        meta: dict[str, Any],
        created_at: float | None,
        incarnation: str | None = None,
    ) -> MessageRecord:
        stamp = now()
        row = db.execute(
            "UPDATE sessions SET last_seq = last_seq + 1, updated_at = ?"
            " WHERE key = ? AND (? IS NULL OR incarnation = ?) RETURNING last_seq",
            (stamp, key, incarnation, incarnation),
        ).fetchone()
        if row is None:
            raise self._refusal(key, incarnation)
        message = MessageRecord(key, row[0], role, content, run_id, created_at or stamp, meta)
        db.execute(
            "INSERT INTO messages (session_key, seq, role, content, run_id, created_at, meta)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, message.seq, role, content, run_id, message.created_at, dump_meta(meta)),
        )
        return message

    async def append_message(
        self,
        key: str,
        role: str,
        content: str,
        *,
        run_id: str | None = None,
        meta: dict[str, Any] | None = None,
        created_at: float | None = None,
    ) -> MessageRecord:
        check_message(key, role, content, run_id)
        return await self._call_write(
            self._append, key, role, content, run_id, dict(meta or {}), created_at
        )

    def _history(self, key: str, limit: int, before: int | None) -> list[MessageRecord]:
        rows = self._db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages"
            " WHERE session_key = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (key, MAX_SEQ if before is None else clamp_seq(before), limit),
        ).fetchall()
        return [message_from_row(r) for r in reversed(rows)]

    async def history(
        self, key: str, *, limit: int = 50, before: int | None = None
    ) -> list[MessageRecord]:
        return await self._call(self._history, key, limit, before)

    def _update(self, db: sqlite3.Connection, key: str, column: str, value: Any) -> None:
        cursor = db.execute(
            f"UPDATE sessions SET {column} = ?, updated_at = ? WHERE key = ?", (value, now(), key)
        )
        if cursor.rowcount == 0:
            raise self._refusal(key, None)

    async def set_alias(self, key: str, target: str | None) -> None:
        check_storable("aliasOf", target, indexed=True)
        await self._call_write(self._update, key, "alias_of", target)

    async def set_status(self, key: str, status: str) -> None:
        await self._call_write(self._update, key, "status", status)

    async def set_label(self, key: str, label: str | None) -> None:
        check_storable("label", label, indexed=True)
        await self._call_write(self._update, key, "label", label)

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """An exclusive lock on a file beside the database (processes sharing the file)."""
        path = self.path.with_name(f"{self.path.name}.{name}.lock")
        touch_private(path)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    def _start_run(self, db: sqlite3.Connection, run_id: str, session_key: str) -> RunRecord:
        run = RunRecord(run_id, session_key, RunStatus.RUNNING, now(), None, None)
        db.execute(
            "INSERT INTO runs (run_id, session_key, status, created_at, owner)"
            " VALUES (?, ?, ?, ?, ?)",
            (run.run_id, run.session_key, run.status, run.created_at, self.owner),
        )
        return run

    async def start_run(self, run_id: str, session_key: str) -> RunRecord:
        return await self._call_write(self._start_run, run_id, session_key)

    @staticmethod
    def _finish_run(db: sqlite3.Connection, run_id: str, status: str, error: str | None) -> None:
        db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
            (status, now(), error, run_id),
        )

    async def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        await self._call_write(self._finish_run, run_id, status, error)

    def _refusal(self, key: str, incarnation: str | None) -> Exception:
        """Why a write for `key` (in `incarnation`, if given) found no session to go into."""
        tombstone = self._find_tombstone(key)
        exists = self._db.execute("SELECT 1 FROM sessions WHERE key = ?", (key,)).fetchone()
        if exists is None:
            return deleted(key, tombstone) if tombstone is not None else missing(key)
        if tombstone is not None and tombstone.incarnation == incarnation:
            return deleted(key, tombstone)  # deleted, then created again: not this one
        return reset_since(key)

    def _accept(
        self,
        db: sqlite3.Connection,
        key: str,
        content: str,
        run_id: str,
        meta: dict[str, Any],
        incarnation: str | None,
    ) -> tuple[MessageRecord, RunRecord]:
        row = db.execute(
            "SELECT alias_of, incarnation FROM sessions WHERE key = ?", (key,)
        ).fetchone()
        if row is None or (incarnation is not None and row[1] != incarnation):
            raise self._refusal(key, incarnation)
        if row[0] is not None:
            raise moved(key, row[0])
        message = self._append(db, key, "user", content, run_id, meta, None)
        return message, self._start_run(db, run_id, key)

    async def accept_message(
        self,
        key: str,
        content: str,
        *,
        run_id: str,
        meta: dict[str, Any] | None = None,
        incarnation: str | None = None,
    ) -> tuple[MessageRecord, RunRecord]:
        check_message(key, "user", content, run_id)
        return await self._call_write(
            self._accept, key, content, run_id, dict(meta or {}), incarnation
        )

    def _complete(
        self, db: sqlite3.Connection, key: str, run_id: str, reply: str, incarnation: str | None
    ) -> MessageRecord:
        message = self._append(db, key, "assistant", reply, run_id, {}, None, incarnation)
        self._finish_run(db, run_id, RunStatus.COMPLETED, None)
        return message

    async def complete_run(
        self, key: str, run_id: str, reply: str, *, incarnation: str | None = None
    ) -> MessageRecord:
        check_message(key, "assistant", reply, run_id)
        return await self._call_write(self._complete, key, run_id, reply, incarnation)

    def _find_tombstone(self, key: str) -> Tombstone | None:
        sql = f"SELECT {TOMBSTONE_COLUMNS} FROM tombstones WHERE key = ?"
        return tombstone_from_row(self._db.execute(sql, (key,)).fetchone())

    async def find_tombstone(self, key: str) -> Tombstone | None:
        check_storable("sessionKey", key, indexed=True)
        return await self._call(self._find_tombstone, key)

    def _list_tombstones(self, limit: int) -> list[Tombstone]:
        sql = f"SELECT {TOMBSTONE_COLUMNS} FROM tombstones ORDER BY deleted_at DESC LIMIT ?"
        return [Tombstone(*row) for row in self._db.execute(sql, (limit,)).fetchall()]

    async def list_tombstones(self, *, limit: int = 1000) -> list[Tombstone]:
        return await self._call(self._list_tombstones, limit)

    def _delete(
        self, db: sqlite3.Connection, key: str, by: str | None, reason: str | None
    ) -> Erasure:
        record = self._find(key)
        if record is None:
            raise self._refusal(key, None)
        counts = [
            db.execute(f"DELETE FROM {table} WHERE session_key = ?", (key,)).rowcount
            for table in ("messages", "runs", "archived_messages")
        ]
        db.execute("DELETE FROM sessions WHERE key = ?", (key,))
        row = db.execute(
            f"INSERT INTO tombstones ({TOMBSTONE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 1)"
            " ON CONFLICT (key) DO UPDATE SET agent_id = excluded.agent_id,"
            " incarnation = excluded.incarnation, deleted_at = excluded.deleted_at,"
            " deleted_by = excluded.deleted_by, reason = excluded.reason,"
            f" deletions = tombstones.deletions + 1 RETURNING {TOMBSTONE_COLUMNS}",
            (key, record.agent_id, record.incarnation, now(), by, reason),
        ).fetchone()
        return Erasure(Tombstone(*row), counts[0], counts[1], counts[2])

    async def delete_session(self, key: str, *, by: str | None, reason: str | None) -> Erasure:
        check_storable("sessionKey", key, indexed=True)
        check_storable("deletedBy", by)
        check_storable("reason", reason)
        return await self._call_write(self._delete, key, by, reason)

    def _reset(
        self, db: sqlite3.Connection, key: str, archive: bool, by: str | None, reason: str | None
    ) -> ResetOutcome:
        record = self._find(key)
        if record is None:
            raise self._refusal(key, None)
        stamp = now()
        archived = 0
        if archive:
            archived = db.execute(
                f"INSERT INTO archived_messages ({MESSAGE_COLUMNS}, incarnation, archived_at)"
                f" SELECT {MESSAGE_COLUMNS}, ?, ? FROM messages WHERE session_key = ?",
                (record.incarnation, stamp, key),
            ).rowcount
        removed = db.execute("DELETE FROM messages WHERE session_key = ?", (key,)).rowcount
        interrupted = db.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?,"
            " error = 'the session was reset during the run'"
            " WHERE session_key = ? AND status = 'running'",
            (stamp, key),
        ).rowcount
        row = db.execute(
            "UPDATE sessions SET incarnation = ?, last_seq = 0, status = 'active', updated_at = ?"
            f" WHERE key = ? RETURNING {SESSION_COLUMNS}",
            (new_incarnation(), stamp, key),
        ).fetchone()
        return ResetOutcome(session_from_row(row), archived, removed - archived, interrupted)

    async def reset_session(
        self, key: str, *, archive: bool, by: str | None, reason: str | None
    ) -> ResetOutcome:
        check_storable("sessionKey", key, indexed=True)
        return await self._call_write(self._reset, key, archive, by, reason)

    def _find_run(self, run_id: str) -> RunRecord | None:
        row = self._db.execute(
            "SELECT run_id, session_key, status, created_at, finished_at, error FROM runs"
            " WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        return RunRecord(*row) if row else None

    async def find_run(self, run_id: str) -> RunRecord | None:
        return await self._call(self._find_run, run_id)

    def _interrupt_running(self, db: sqlite3.Connection, own: bool) -> int:
        owners = db.execute("SELECT DISTINCT owner FROM runs WHERE status = 'running'").fetchall()
        orphaned = [o for (o,) in owners if (own and o == self.owner) or owner_is_dead_here(o)]
        interrupted = 0
        for owner in orphaned:
            interrupted += db.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?,"
                " error = 'the gateway process stopped during the run'"
                " WHERE status = 'running' AND owner IS ?",
                (now(), owner),
            ).rowcount
        return interrupted

    async def interrupt_running(self, *, own: bool = False) -> int:
        return await self._call_write(self._interrupt_running, own)

    def _count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM sessions").fetchone()[0])

    def session_lock(self, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Runs of one session are already serialised by this process's lanes."""
        return contextlib.nullcontext()

    def _import(
        self,
        db: sqlite3.Connection,
        session: SessionRecord,
        messages: list[MessageRecord],
        over_tombstone: bool,
    ) -> bool:
        if not over_tombstone and self._find_tombstone(session.key) is not None:
            return False
        p = session.provenance
        inserted = db.execute(
            "INSERT INTO sessions (key, agent_id, kind, status, label, alias_of, origin,"
            " entry_point, caller_key, parent_key, created_at, updated_at, last_seq, ancestors,"
            " incarnation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO NOTHING",
            (session.key, session.agent_id, session.kind, session.status, session.label,
             session.alias_of, p.origin, p.entry_point, p.caller_key, p.parent_key,
             session.created_at, session.updated_at, session.last_seq,
             dump_ancestors(p.ancestors), session.incarnation),
        ).rowcount  # fmt: skip
        if not inserted:
            return False
        db.executemany(
            f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(m.session_key, m.seq, m.role, m.content, m.run_id, m.created_at,
              dump_meta(m.meta)) for m in messages],
        )  # fmt: skip
        return True

    async def import_session(
        self,
        session: SessionRecord,
        messages: list[MessageRecord],
        *,
        over_tombstone: bool = False,
    ) -> bool:
        check_import(session, messages)
        return await self._call_write(self._import, session, messages, over_tombstone)

    async def publish_events(self, events: list[dict[str, Any]]) -> None:
        """One process per store: its own listeners already have the event."""

    async def listen_events(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """No other process publishes into this store."""

    async def count_sessions(self) -> int:
        return await self._call(self._count)

    def _count_by_origin(self) -> dict[str, int]:
        rows = self._db.execute("SELECT origin, count(*) FROM sessions GROUP BY origin")
        return {origin: int(count) for origin, count in rows.fetchall()}

    async def count_by_origin(self) -> dict[str, int]:
        return await self._call(self._count_by_origin)

    def _aliases_of(self, key: str) -> list[str]:
        rows = self._db.execute(
            "SELECT key FROM sessions WHERE alias_of = ? ORDER BY key", (key,)
        ).fetchall()
        return [row[0] for row in rows]

    async def aliases_of(self, key: str) -> list[str]:
        return await self._call(self._aliases_of, key)

    @staticmethod
    def _probe(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute(f"PRAGMA user_version = {int(version)}")  # a real page write, nothing changed

    async def ping(self) -> None:
        await self._call_write(self._probe)

    @property
    def _serving_lock(self) -> Path:
        return self.path.with_name(self.path.name + ".serving")

    async def mark_serving(self) -> None:
        """A shared lock on a file beside the database, held while this gateway serves."""
        touch_private(self._serving_lock)
        fd = os.open(self._serving_lock, os.O_RDONLY | os.O_NOFOLLOW)
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a migration checks
        self._serving_fd = fd

    async def served_elsewhere(self) -> bool:
        if self._serving_fd is not None or not self._serving_lock.exists():
            return False
        fd = os.open(self._serving_lock, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing releases a lock taken here
        return False

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        try:
            await self._call(self._close)
        finally:
            self._thread.stop()
            if self._serving_fd is not None:
                os.close(self._serving_fd)
                self._serving_fd = None


def _task_cancelling() -> bool:
    """Whether the running task is being cancelled (then a CancelledError is its own)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
