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
from sessiongate.store import base, schema
from sessiongate.store.rows import (
    MESSAGE_COLUMNS,
    RUN_COLUMNS,
    SESSION_COLUMNS,
    TOMBSTONE_COLUMNS,
    insert_message,
    insert_session,
    local_owner,
    message_from_row,
    message_values,
    owner_is_dead_here,
    readable_sessions,
    run_from_row,
    session_from_row,
    session_values,
    tombstone_from_row,
)
from sessiongate.store.sqlite_thread import StoreThread

__all__ = ["SqliteSessionStore"]

ACTIVE, RUNNING = base.SessionStatus.ACTIVE.value, base.RunStatus.RUNNING.value
INTERRUPTED = base.RunStatus.INTERRUPTED.value
INSERT_SESSION = insert_session("sqlite")
INSERT_MESSAGE = insert_message("sqlite")

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


class SqliteSessionStore(base.SingleProcessCoordination, base.SessionStore):
    """A SQLite file shared by the calls of one process (and safely by several)."""

    shared = False
    answers_in_one_write = True

    def __init__(self, path: Path, timeout: float = base.DEFAULT_TIMEOUT_SECONDS) -> None:
        self.path = path
        self.timeout = timeout
        self._thread = StoreThread("sessiongate-sqlite", lambda: self._db)
        self.owner = local_owner()
        self._conn: sqlite3.Connection | None = None
        self._serving_fd: int | None = None

    @classmethod
    async def open(
        cls, path: Path, deadline: float = base.DEFAULT_TIMEOUT_SECONDS
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
        conn.row_factory = sqlite3.Row  # rows are read by column name (store/rows.py)
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
            raise base.store_timeout("sqlite", self.timeout) from None
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

    def _sql_find(self, key: str) -> base.SessionRecord | None:
        row = self._db.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE key = ?", (key,)
        ).fetchone()
        return session_from_row(row) if row else None

    async def _find(self, key: str) -> base.SessionRecord | None:
        return await self._call(self._sql_find, key)

    def _sql_find_by_label(self, label: str, agent_id: str | None) -> base.SessionRecord | None:
        sql = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE label = ? AND status = '{ACTIVE}'"
        params: list[Any] = [label]
        if agent_id:
            sql += " AND agent_id = ?"
            params.append(agent_id)
        row = self._db.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return session_from_row(row) if row else None

    async def _find_by_label(self, label: str, agent_id: str | None) -> base.SessionRecord | None:
        return await self._call(self._sql_find_by_label, label, agent_id)

    def _sql_ensure(
        self, db: sqlite3.Connection, new: base.NewSession
    ) -> tuple[base.SessionRecord, bool]:
        existing = self._sql_find(new.key)
        if existing is not None:
            return existing, False
        tombstone = self._sql_find_tombstone(new.key)
        if base.refused_over_tombstone(new, tombstone):
            assert tombstone is not None
            raise base.deleted(new.key, tombstone)
        row = db.execute(
            f"{INSERT_SESSION} RETURNING {SESSION_COLUMNS}", session_values(new.created(base.now()))
        ).fetchone()
        return session_from_row(row), True

    async def _ensure(self, new: base.NewSession) -> tuple[base.SessionRecord, bool]:
        return await self._call_write(self._sql_ensure, new)

    def _sql_list(
        self, agent_id: str | None, kind: str | None, limit: int, after: int | None
    ) -> base.SessionPage:
        filters = [("agent_id = ?", agent_id), ("kind = ?", kind), ("id < ?", after)]
        active = [(clause, value) for clause, value in filters if value is not None]
        where = "WHERE " + " AND ".join(c for c, _ in active) if active else ""
        params = [value for _, value in active]
        rows = self._db.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions {where} ORDER BY id DESC LIMIT ?",
            (*params, limit + 1),
        ).fetchall()
        cursor = base.encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
        return base.SessionPage(readable_sessions(rows[:limit]), cursor)

    async def _list(
        self, agent_id: str | None, kind: str | None, limit: int, after: int | None
    ) -> base.SessionPage:
        return await self._call(self._sql_list, agent_id, kind, limit, after)

    def _sql_append(self, db: sqlite3.Connection, new: base.NewMessage) -> base.MessageRecord:
        stamp = base.now()
        row = db.execute(
            "UPDATE sessions SET last_seq = last_seq + 1, updated_at = ?"
            " WHERE key = ? AND (? IS NULL OR incarnation = ?) RETURNING last_seq",
            (stamp, new.key, new.incarnation, new.incarnation),
        ).fetchone()
        if row is None:
            raise self._refusal(new.key, new.incarnation)
        message = new.stored(row["last_seq"], stamp)
        db.execute(INSERT_MESSAGE, message_values(message))
        return message

    async def _append(self, new: base.NewMessage) -> base.MessageRecord:
        return await self._call_write(self._sql_append, new)

    def _sql_history(self, key: str, limit: int, before: int | None) -> list[base.MessageRecord]:
        rows = self._db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages"
            " WHERE session_key = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (key, base.MAX_SEQ if before is None else before, limit),
        ).fetchall()
        return [message_from_row(r) for r in reversed(rows)]

    async def _history(self, key: str, limit: int, before: int | None) -> list[base.MessageRecord]:
        return await self._call(self._sql_history, key, limit, before)

    def _sql_update(self, db: sqlite3.Connection, key: str, column: str, value: Any) -> None:
        cursor = db.execute(
            f"UPDATE sessions SET {column} = ?, updated_at = ? WHERE key = ?",
            (value, base.now(), key),
        )
        if cursor.rowcount == 0:
            raise self._refusal(key, None)

    async def _update(self, key: str, column: str, value: str | None) -> None:
        await self._call_write(self._sql_update, key, column, value)

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

    def _sql_start_run(
        self, db: sqlite3.Connection, run_id: str, session_key: str
    ) -> base.RunRecord:
        run = base.RunRecord(run_id, session_key, base.RunStatus.RUNNING, base.now(), None, None)
        db.execute(
            "INSERT INTO runs (run_id, session_key, status, created_at, owner)"
            " VALUES (?, ?, ?, ?, ?)",
            (run.run_id, run.session_key, run.status, run.created_at, self.owner),
        )
        return run

    async def start_run(self, run_id: str, session_key: str) -> base.RunRecord:
        return await self._call_write(self._sql_start_run, run_id, session_key)

    @staticmethod
    def _sql_finish_run(
        db: sqlite3.Connection, run_id: str, status: str, error: str | None
    ) -> None:
        db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
            (status, base.now(), error, run_id),
        )

    async def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        await self._call_write(self._sql_finish_run, run_id, status, error)

    def _refusal(self, key: str, incarnation: str | None) -> Exception:
        """Why a write for `key` (in `incarnation`, if given) found no session to go into."""
        tombstone = self._sql_find_tombstone(key)
        exists = self._db.execute("SELECT 1 FROM sessions WHERE key = ?", (key,)).fetchone()
        return base.refusal(key, incarnation, exists=exists is not None, tombstone=tombstone)

    def _accept_refusal(self, db: sqlite3.Connection, new: base.NewMessage) -> Exception | None:
        """Why `new` may not be accepted (missing, deleted, reset since, moved); None: it may."""
        row = db.execute(
            "SELECT alias_of, incarnation FROM sessions WHERE key = ?", (new.key,)
        ).fetchone()
        if row is None or new.incarnation not in (None, row["incarnation"]):
            return self._refusal(new.key, new.incarnation)
        if row["alias_of"] is not None:
            return base.moved(new.key, row["alias_of"])
        return None

    def _sql_accept(
        self, db: sqlite3.Connection, new: base.NewMessage
    ) -> tuple[base.MessageRecord, base.RunRecord]:
        refused = self._accept_refusal(db, new)
        if refused is not None:
            raise refused
        message = self._sql_append(db, new)
        return message, self._sql_start_run(db, str(new.run_id), new.key)

    async def _accept(self, new: base.NewMessage) -> tuple[base.MessageRecord, base.RunRecord]:
        return await self._call_write(self._sql_accept, new)

    def _sql_accept_with_history(
        self, db: sqlite3.Connection, new: base.NewMessage, limit: int
    ) -> tuple[base.MessageRecord, base.RunRecord, list[base.MessageRecord]]:
        message, run = self._sql_accept(db, new)
        return message, run, self._sql_history(new.key, limit, None)  # the same connection

    async def _accept_with_history(
        self, new: base.NewMessage, limit: int
    ) -> tuple[base.MessageRecord, base.RunRecord, list[base.MessageRecord] | None]:
        # one hop to the store thread: the run's transcript read in the intake's transaction
        return await self._call_write(self._sql_accept_with_history, new, limit)

    def _sql_complete(self, db: sqlite3.Connection, new: base.NewMessage) -> base.MessageRecord:
        message = self._sql_append(db, new)
        self._sql_finish_run(db, str(new.run_id), base.RunStatus.COMPLETED, None)
        return message

    async def _complete(self, new: base.NewMessage) -> base.MessageRecord:
        return await self._call_write(self._sql_complete, new)

    def _sql_accept_answered(
        self, db: sqlite3.Connection, new: base.NewMessage, reply: base.NewMessage
    ) -> tuple[base.MessageRecord, base.RunRecord, base.MessageRecord]:
        stamp = base.now()
        row = db.execute(
            "UPDATE sessions SET last_seq = last_seq + 2, updated_at = ? WHERE key = ?"
            " AND (? IS NULL OR incarnation = ?) AND alias_of IS NULL RETURNING last_seq",
            (stamp, new.key, new.incarnation, new.incarnation),
        ).fetchone()
        if row is None:  # nothing written: why, in `_sql_accept`'s order
            refused = self._accept_refusal(db, new)
            raise refused if refused is not None else base.missing(new.key)
        seq = row["last_seq"]
        message, answer = new.stored(seq - 1, stamp), reply.stored(seq, stamp)
        run = base.RunRecord(str(new.run_id), new.key, base.RunStatus.COMPLETED, stamp, stamp,
                             None)  # fmt: skip
        db.execute(
            "INSERT INTO runs (run_id, session_key, status, created_at, finished_at, owner)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (run.run_id, run.session_key, run.status, stamp, stamp, self.owner),
        )
        db.executemany(INSERT_MESSAGE, (message_values(message), message_values(answer)))
        return message, run, answer

    async def _accept_answered(
        self, new: base.NewMessage, reply: base.NewMessage
    ) -> tuple[base.MessageRecord, base.RunRecord, base.MessageRecord]:
        # one write: the message, its run (completed) and the reply in one transaction
        return await self._call_write(self._sql_accept_answered, new, reply)

    def _sql_find_tombstone(self, key: str) -> base.Tombstone | None:
        sql = f"SELECT {TOMBSTONE_COLUMNS} FROM tombstones WHERE key = ?"
        return tombstone_from_row(self._db.execute(sql, (key,)).fetchone())

    async def _find_tombstone(self, key: str) -> base.Tombstone | None:
        return await self._call(self._sql_find_tombstone, key)

    def _sql_find_with_tombstone(
        self, key: str, always: bool
    ) -> tuple[base.SessionRecord | None, base.Tombstone | None]:
        record = self._sql_find(key)
        if record is not None and not always:
            return record, None
        return record, self._sql_find_tombstone(key)

    async def _find_with_tombstone(
        self, key: str, always: bool
    ) -> tuple[base.SessionRecord | None, base.Tombstone | None]:
        # one call on the store thread: one hand-off, one wake-up, no task per read
        return await self._call(self._sql_find_with_tombstone, key, always)

    def _sql_list_tombstones(self, limit: int) -> list[base.Tombstone]:
        sql = f"SELECT {TOMBSTONE_COLUMNS} FROM tombstones ORDER BY deleted_at DESC LIMIT ?"
        rows = self._db.execute(sql, (limit,)).fetchall()
        return [t for t in map(tombstone_from_row, rows) if t is not None]

    async def _list_tombstones(self, limit: int) -> list[base.Tombstone]:
        return await self._call(self._sql_list_tombstones, limit)

    @staticmethod
    def _sql_import_tombstone(db: sqlite3.Connection, t: base.Tombstone) -> bool:
        inserted = db.execute(
            f"INSERT INTO tombstones ({TOMBSTONE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (key) DO NOTHING",
            (t.key, t.agent_id, t.incarnation, t.deleted_at, t.deleted_by, t.reason, t.deletions),
        ).rowcount
        return bool(inserted)

    async def _import_tombstone(self, tombstone: base.Tombstone) -> bool:
        return await self._call_write(self._sql_import_tombstone, tombstone)

    def _sql_delete(
        self, db: sqlite3.Connection, key: str, by: str | None, reason: str | None
    ) -> base.Erasure:
        record = self._sql_find(key)
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
            (key, record.agent_id, record.incarnation, base.now(), by, reason),
        ).fetchone()
        tombstone = tombstone_from_row(row)
        assert tombstone is not None
        return base.Erasure(tombstone, counts[0], counts[1], counts[2])

    async def _delete(self, key: str, by: str | None, reason: str | None) -> base.Erasure:
        return await self._call_write(self._sql_delete, key, by, reason)

    def _sql_reset(
        self, db: sqlite3.Connection, key: str, archive: bool, by: str | None, reason: str | None
    ) -> base.ResetOutcome:
        record = self._sql_find(key)
        if record is None:
            raise self._refusal(key, None)
        stamp = base.now()
        archived = 0
        if archive:
            archived = db.execute(
                f"INSERT INTO archived_messages ({MESSAGE_COLUMNS}, incarnation, archived_at)"
                f" SELECT {MESSAGE_COLUMNS}, ?, ? FROM messages WHERE session_key = ?",
                (record.incarnation, stamp, key),
            ).rowcount
        removed = db.execute("DELETE FROM messages WHERE session_key = ?", (key,)).rowcount
        interrupted = db.execute(
            f"UPDATE runs SET status = '{INTERRUPTED}', finished_at = ?,"
            " error = 'the session was reset during the run'"
            f" WHERE session_key = ? AND status = '{RUNNING}'",
            (stamp, key),
        ).rowcount
        row = db.execute(
            f"UPDATE sessions SET incarnation = ?, last_seq = 0, status = '{ACTIVE}',"
            f" updated_at = ? WHERE key = ? RETURNING {SESSION_COLUMNS}",
            (base.new_incarnation(), stamp, key),
        ).fetchone()
        return base.ResetOutcome(session_from_row(row), archived, removed - archived, interrupted)

    async def _reset(
        self, key: str, archive: bool, by: str | None, reason: str | None
    ) -> base.ResetOutcome:
        return await self._call_write(self._sql_reset, key, archive, by, reason)

    def _sql_find_run(self, run_id: str) -> base.RunRecord | None:
        row = self._db.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        found = row.fetchone()
        return run_from_row(found) if found else None

    async def find_run(self, run_id: str) -> base.RunRecord | None:
        return await self._call(self._sql_find_run, run_id)

    def _sql_interrupt_running(self, db: sqlite3.Connection, own: bool) -> int:
        owners = db.execute(f"SELECT DISTINCT owner FROM runs WHERE status = '{RUNNING}'")
        orphaned = [
            o for o in (row["owner"] for row in owners)
            if (own and o == self.owner) or owner_is_dead_here(o)
        ]  # fmt: skip
        interrupted = 0
        for owner in orphaned:
            interrupted += db.execute(
                f"UPDATE runs SET status = '{INTERRUPTED}', finished_at = ?,"
                " error = 'the gateway process stopped during the run'"
                f" WHERE status = '{RUNNING}' AND owner IS ?",
                (base.now(), owner),
            ).rowcount
        return interrupted

    async def interrupt_running(self, *, own: bool = False) -> int:
        return await self._call_write(self._sql_interrupt_running, own)

    def _sql_import(
        self,
        db: sqlite3.Connection,
        session: base.SessionRecord,
        messages: list[base.MessageRecord],
        over_tombstone: bool,
    ) -> bool:
        if not over_tombstone and self._sql_find_tombstone(session.key) is not None:
            return False
        if not db.execute(INSERT_SESSION, session_values(session)).rowcount:
            return False
        db.executemany(INSERT_MESSAGE, [message_values(m) for m in messages])
        return True

    async def _import(
        self, session: base.SessionRecord, messages: list[base.MessageRecord], over_tombstone: bool
    ) -> bool:
        return await self._call_write(self._sql_import, session, messages, over_tombstone)

    def _sql_count(self) -> int:
        return int(self._db.execute("SELECT count(*) AS count FROM sessions").fetchone()["count"])

    async def count_sessions(self) -> int:
        return await self._call(self._sql_count)

    def _sql_count_by_origin(self) -> dict[str, int]:
        rows = self._db.execute("SELECT origin, count(*) AS count FROM sessions GROUP BY origin")
        return {row["origin"]: int(row["count"]) for row in rows.fetchall()}

    async def count_by_origin(self) -> dict[str, int]:
        return await self._call(self._sql_count_by_origin)

    def _sql_aliases_of(self, key: str) -> list[str]:
        rows = self._db.execute(
            "SELECT key FROM sessions WHERE alias_of = ? ORDER BY key", (key,)
        ).fetchall()
        return [row["key"] for row in rows]

    async def aliases_of(self, key: str) -> list[str]:
        return await self._call(self._sql_aliases_of, key)

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

    def _open_page_session(self, db: sqlite3.Connection, session_id: str, until: float) -> None:
        db.execute("DELETE FROM page_sessions WHERE expires_at <= ?", (base.now(),))
        db.execute("INSERT INTO page_sessions (id, expires_at) VALUES (?, ?)", (session_id, until))

    async def open_page_session(self, session_id: str, expires_at: float) -> None:
        await self._call_write(self._open_page_session, session_id, expires_at)

    def _page_session_open(self, session_id: str) -> bool:
        sql = "SELECT 1 FROM page_sessions WHERE id = ? AND expires_at > ?"
        return self._db.execute(sql, (session_id, base.now())).fetchone() is not None

    async def page_session_open(self, session_id: str) -> bool:
        return await self._call(self._page_session_open, session_id)

    def _close_page_session(self, db: sqlite3.Connection, session_id: str | None) -> None:
        if session_id is None:
            db.execute("DELETE FROM page_sessions")
        else:
            db.execute("DELETE FROM page_sessions WHERE id = ?", (session_id,))

    async def close_page_session(self, session_id: str | None) -> None:
        await self._call_write(self._close_page_session, session_id)

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
