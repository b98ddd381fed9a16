"""Message Batches in the embedded SQLite database (the jobs' own)."""

from __future__ import annotations

import sqlite3
import time

from stratus._sqlite import SqliteDB
from stratus.batches._types import (
    BatchRecord,
    Counts,
    Due,
    NewBatch,
    ResultRow,
    batch_row,
    page_of,
    page_query,
)
from stratus.store import Status

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    total INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    retain_until REAL NOT NULL,
    cancel_initiated_at REAL
);
CREATE INDEX IF NOT EXISTS batches_account ON batches (account_id, seq);
CREATE INDEX IF NOT EXISTS batches_retention ON batches (retain_until);
"""
_OPEN = "('QUEUED', 'PROCESSING')"


def insert(conn: sqlite3.Connection, batch: NewBatch, now: float) -> None:
    """Record ``batch``, in the transaction that queues its jobs."""
    conn.execute(
        "INSERT INTO batches (id, account_id, key_id, total, created_at, expires_at, "
        "retain_until) VALUES (:id, :account, :key, :total, :created, :expires, :retain)",
        batch_row(batch, now))


def _record(conn: sqlite3.Connection, row: sqlite3.Row) -> BatchRecord:
    counts, last = Counts(), None
    for status, error_type, n, ended in conn.execute(
            "SELECT status, error_type, COUNT(*), MAX(completed_at) FROM jobs "
            "WHERE batch_id = ? GROUP BY status, error_type", (row["id"],)):
        counts = counts.add(status, error_type, n)
        last = ended if last is None or (ended or 0) > last else last
    return BatchRecord(
        id=row["id"], account_id=row["account_id"], key_id=row["key_id"], total=row["total"],
        created_at=row["created_at"], expires_at=row["expires_at"],
        retain_until=row["retain_until"], cancel_initiated_at=row["cancel_initiated_at"],
        counts=counts, last_ended_at=last)


def _row(conn: sqlite3.Connection, account_id: str, batch_id: str,
         now: float) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT * FROM batches WHERE id = ? AND account_id = ? AND retain_until > ?",
        (batch_id, account_id, now)).fetchone()


class SqliteBatches:
    def __init__(self, db: SqliteDB) -> None:
        self._db = db
        db.script(SCHEMA)

    async def get(self, account_id: str, batch_id: str) -> BatchRecord | None:
        def read(conn: sqlite3.Connection) -> BatchRecord | None:
            row = _row(conn, account_id, batch_id, time.time())
            return None if row is None else _record(conn, row)

        return await self._db.read(read)

    async def page(self, account_id: str, limit: int, *, before_id: str | None = None,
                   after_id: str | None = None) -> tuple[list[BatchRecord], bool]:
        def read(conn: sqlite3.Connection) -> tuple[list[BatchRecord], bool]:
            narrow, args, order = page_query("?", before_id, after_id)
            rows, more = page_of(conn.execute(
                f"SELECT * FROM batches WHERE account_id = ? AND retain_until > ?{narrow} "
                f"ORDER BY seq {order} LIMIT ?",
                (account_id, time.time(), *args, limit + 1)).fetchall(), limit, order)
            return [_record(conn, row) for row in rows], more

        return await self._db.read(read)

    async def begin_cancel(self, account_id: str, batch_id: str) -> BatchRecord | None:
        def write(conn: sqlite3.Connection, now: float) -> BatchRecord | None:
            conn.execute("UPDATE batches SET cancel_initiated_at = ? WHERE id = ? "
                         "AND account_id = ? AND cancel_initiated_at IS NULL AND "
                         f"EXISTS (SELECT 1 FROM jobs WHERE batch_id = batches.id "
                         f"AND status IN {_OPEN})", (now, batch_id, account_id))
            row = _row(conn, account_id, batch_id, now)
            return None if row is None else _record(conn, row)

        return await self._db.write(write, time.time())

    async def due(self) -> list[Due]:
        def read(conn: sqlite3.Connection) -> list[Due]:
            rows = conn.execute(
                "SELECT id, cancel_initiated_at IS NOT NULL AS canceling FROM batches b "
                "WHERE (cancel_initiated_at IS NOT NULL OR expires_at <= ?) AND EXISTS "
                f"(SELECT 1 FROM jobs WHERE batch_id = b.id AND status IN {_OPEN})",
                (time.time(),)).fetchall()
            return [Due(row["id"], bool(row["canceling"])) for row in rows]

        return await self._db.read(read)

    async def job_ids(self, batch_id: str, statuses: tuple[Status, ...],
                      limit: int) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            marks = ",".join("?" * len(statuses))
            rows = conn.execute(
                f"SELECT id FROM jobs WHERE batch_id = ? AND status IN ({marks}) "
                "ORDER BY seq LIMIT ?", (batch_id, *statuses, limit)).fetchall()
            return [row["id"] for row in rows]

        return await self._db.read(read)

    async def results(self, batch_id: str, after_seq: int, limit: int) -> list[ResultRow]:
        def read(conn: sqlite3.Connection) -> list[ResultRow]:
            rows = conn.execute(
                "SELECT seq, custom_id, status, result, error, error_type FROM jobs "
                "WHERE batch_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (batch_id, after_seq, limit)).fetchall()
            return [ResultRow(seq=row["seq"], custom_id=row["custom_id"],
                              status=Status(row["status"]), result=row["result"],
                              error=row["error"], error_type=row["error_type"])
                    for row in rows]

        return await self._db.read(read)

    async def delete(self, account_id: str, batch_id: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM batches WHERE id = ? AND account_id = ?",
                               (batch_id, account_id))
            if cur.rowcount:
                conn.execute("DELETE FROM jobs WHERE batch_id = ?", (batch_id,))
            return cur.rowcount == 1

        return await self._db.write(write)

    async def purge(self) -> int:
        def write(conn: sqlite3.Connection, now: float) -> int:
            ids = [row["id"] for row in conn.execute(
                "SELECT id FROM batches WHERE retain_until <= ?", (now,))]
            for batch_id in ids:
                conn.execute("DELETE FROM jobs WHERE batch_id = ?", (batch_id,))
                conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
            return len(ids)

        return await self._db.write(write, time.time())
