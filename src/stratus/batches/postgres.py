"""Message Batches in PostgreSQL (the jobs' own database; times on its clock)."""

from __future__ import annotations

from typing import Any

from stratus._postgres import Connection, Postgres
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

_OPEN = "('QUEUED', 'PROCESSING')"
_LIVE = "retain_until > stratus_now()"


async def insert(conn: Connection, batch: NewBatch) -> None:
    """Record ``batch``, in the transaction that queues its jobs."""
    cur = await conn.execute("SELECT stratus_now() AS now")
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        "INSERT INTO batches (id, account_id, key_id, total, created_at, expires_at, "
        "retain_until) VALUES (%(id)s, %(account)s, %(key)s, %(total)s, %(created)s, "
        "%(expires)s, %(retain)s)", batch_row(batch, row["now"]))


async def _record(conn: Connection, row: dict[str, Any]) -> BatchRecord:
    cur = await conn.execute(
        "SELECT status, error_type, count(*) AS n, max(completed_at) AS ended FROM jobs "
        "WHERE batch_id = %s GROUP BY status, error_type", (row["id"],))
    counts, last = Counts(), None
    for part in await cur.fetchall():
        counts = counts.add(part["status"], part["error_type"], int(part["n"]))
        ended = part["ended"]
        last = ended if last is None or (ended or 0) > last else last
    return BatchRecord(
        id=row["id"], account_id=row["account_id"], key_id=row["key_id"], total=row["total"],
        created_at=row["created_at"], expires_at=row["expires_at"],
        retain_until=row["retain_until"], cancel_initiated_at=row["cancel_initiated_at"],
        counts=counts, last_ended_at=last)


async def _one(conn: Connection, account_id: str, batch_id: str) -> BatchRecord | None:
    cur = await conn.execute(
        f"SELECT * FROM batches WHERE id = %s AND account_id = %s AND {_LIVE}",
        (batch_id, account_id))
    row = await cur.fetchone()
    return None if row is None else await _record(conn, row)


class PostgresBatches:
    def __init__(self, pg: Postgres) -> None:
        self._pg = pg

    async def get(self, account_id: str, batch_id: str) -> BatchRecord | None:
        async with self._pg.connection() as conn:
            return await _one(conn, account_id, batch_id)

    async def page(self, account_id: str, limit: int, *, before_id: str | None = None,
                   after_id: str | None = None) -> tuple[list[BatchRecord], bool]:
        narrow, args, order = page_query("%s", before_id, after_id)
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                f"SELECT * FROM batches WHERE account_id = %s AND {_LIVE}{narrow} "
                f"ORDER BY seq {order} LIMIT %s", (account_id, *args, limit + 1))
            rows, more = page_of(await cur.fetchall(), limit, order)
            return [await _record(conn, row) for row in rows], more

    async def begin_cancel(self, account_id: str, batch_id: str) -> BatchRecord | None:
        async with self._pg.connection() as conn:
            await conn.execute(
                "UPDATE batches SET cancel_initiated_at = stratus_now() WHERE id = %s "
                "AND account_id = %s AND cancel_initiated_at IS NULL AND EXISTS "
                f"(SELECT 1 FROM jobs WHERE batch_id = batches.id AND status IN {_OPEN})",
                (batch_id, account_id))
            return await _one(conn, account_id, batch_id)

    async def due(self) -> list[Due]:
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "SELECT id, cancel_initiated_at IS NOT NULL AS canceling FROM batches b "
                "WHERE (cancel_initiated_at IS NOT NULL OR expires_at <= stratus_now()) "
                f"AND EXISTS (SELECT 1 FROM jobs WHERE batch_id = b.id AND status IN {_OPEN})")
            return [Due(row["id"], row["canceling"]) for row in await cur.fetchall()]

    async def job_ids(self, batch_id: str, statuses: tuple[Status, ...],
                      limit: int) -> list[str]:
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM jobs WHERE batch_id = %s AND status = ANY(%s) "
                "ORDER BY seq LIMIT %s", (batch_id, [s.value for s in statuses], limit))
            return [row["id"] for row in await cur.fetchall()]

    async def results(self, batch_id: str, after_seq: int, limit: int) -> list[ResultRow]:
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, custom_id, status, result, error, error_type FROM jobs "
                "WHERE batch_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (batch_id, after_seq, limit))
            return [ResultRow(seq=row["seq"], custom_id=row["custom_id"],
                              status=Status(row["status"]), result=row["result"],
                              error=row["error"], error_type=row["error_type"])
                    for row in await cur.fetchall()]

    async def delete(self, account_id: str, batch_id: str) -> bool:
        async with self._pg.transaction() as conn:
            cur = await conn.execute("DELETE FROM batches WHERE id = %s AND account_id = %s",
                                     (batch_id, account_id))
            if cur.rowcount:
                await conn.execute("DELETE FROM jobs WHERE batch_id = %s", (batch_id,))
            return cur.rowcount == 1

    async def purge(self) -> int:
        async with self._pg.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM batches WHERE retain_until <= stratus_now() RETURNING id")
            ids = [row["id"] for row in await cur.fetchall()]
            if ids:
                await conn.execute("DELETE FROM jobs WHERE batch_id = ANY(%s)", (ids,))
            return len(ids)
