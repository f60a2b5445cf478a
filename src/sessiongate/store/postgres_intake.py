"""PostgreSQL's intake statement: inbound messages and their runs, several in one round trip.

One statement stores, for each row, an inbound message and its run as running
(`accept_message`) or — with a reply — the message, its run already completed and the
reply (`accept_answered`, a runtime that answers without I/O). Rows come as arrays
(`unnest`), one per session key; `Group` gathers the rows of concurrent sends.

- Sessions are locked as the rows' updates need them, re-checked (incarnation, alias)
  on the row locked, as the single-row append does: nothing lands in a session reset,
  deleted or moved since it was resolved.
- `SKIP` (the grouped statement) writes only the sessions it can lock without waiting:
  a session a delete, a reset or another process holds is written alone (`WAIT`), so
  one busy session never holds up the rest, and two processes' statements never wait
  for each other.
- A row with a reply is written only while no process runs a run of its session: the
  statement tries the session's lane lock (`session_lock`'s) for its transaction, and
  a row whose lane is held is left for the normal path (queued, run under the lane).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sessiongate.store import base
from sessiongate.store.rows import dump_meta

__all__ = ["SKIP", "WAIT", "Intake", "columns"]

RUNNING, COMPLETED = base.RunStatus.RUNNING.value, base.RunStatus.COMPLETED.value

_INTAKE = f"""
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[],
                         $6::text[], $7::float8[], $8::text[])
        WITH ORDINALITY AS t(key, content, run_id, created_at, meta, incarnation, stamp, reply, n)
), held AS (
    SELECT key FROM sessions WHERE key = ANY($1::text[]) FOR NO KEY UPDATE{{skip}}
), free AS (
    SELECT n FROM i WHERE CASE WHEN reply IS NULL THEN true
                              ELSE pg_try_advisory_xact_lock(hashtextextended(key, 1)) END
), s AS (
    UPDATE sessions SET updated_at = i.stamp,
        last_seq = last_seq + CASE WHEN i.reply IS NULL THEN 1 ELSE 2 END
    FROM i WHERE sessions.key = i.key AND sessions.key IN (SELECT key FROM held)
        AND i.n IN (SELECT n FROM free) AND alias_of IS NULL
        AND (i.incarnation IS NULL OR sessions.incarnation = i.incarnation)
    RETURNING i.n, sessions.last_seq - CASE WHEN i.reply IS NULL THEN 0 ELSE 1 END AS seq
), m AS (
    INSERT INTO messages (session_key, seq, role, content, run_id, created_at, meta)
    SELECT i.key, s.seq, 'user', i.content, i.run_id, i.created_at, i.meta
    FROM s JOIN i USING (n)
    UNION ALL
    SELECT i.key, s.seq + 1, 'assistant', i.reply, i.run_id, i.stamp, NULL
    FROM s JOIN i USING (n) WHERE i.reply IS NOT NULL
), r AS (
    INSERT INTO runs (run_id, session_key, status, created_at, finished_at, owner)
    SELECT i.run_id, i.key, CASE WHEN i.reply IS NULL THEN '{RUNNING}' ELSE '{COMPLETED}' END,
        i.created_at, CASE WHEN i.reply IS NULL THEN NULL ELSE i.stamp END, $9
    FROM s JOIN i USING (n)
)
SELECT s.seq, i.n IN (SELECT n FROM free) AS lane_free FROM i LEFT JOIN s USING (n) ORDER BY i.n
"""
SKIP = _INTAKE.format(skip=" SKIP LOCKED")
WAIT = _INTAKE.format(skip="")


@dataclass(frozen=True, slots=True)
class Intake:
    """One row: an inbound message, stored at `stamp`, and its reply if it has one."""

    new: base.NewMessage
    stamp: float
    reply: str | None = None

    @property
    def created_at(self) -> float:
        return self.new.created_at or self.stamp


def columns(rows: list[Intake]) -> list[list[Any]]:
    """The statement's arrays ($1 to $8), one value per row in each."""
    arrays: list[list[Any]] = [[] for _ in range(8)]
    for row in rows:
        new = row.new
        values = (new.key, new.content, new.run_id, row.created_at, dump_meta(new.meta),
                  new.incarnation, row.stamp, row.reply)  # fmt: skip
        for array, value in zip(arrays, values, strict=True):
            array.append(value)
    return arrays
