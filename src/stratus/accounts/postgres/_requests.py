"""Request history, and the opening and closing of a request's credits.

:func:`open_request` and :func:`close_request` run inside the caller's transaction, so the
job store admits a job and reserves its credits (or ends a job and settles it) in one
transaction. A request is settled once: the closer locks its row while it is still open, and
a second closer, on this node or another, finds it ended and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stratus._postgres import Connection
from stratus.accounts._rules import history_filter
from stratus.accounts._types import HistoryQuery, Opening, RequestEntry, UsageRow, to_nano
from stratus.accounts.postgres import _credits
from stratus.store import ErrorType, JobRecord, Metrics

_ENTRY_COLUMNS = ", ".join(RequestEntry.__slots__)  # type: ignore[attr-defined]
_OPEN = "completed_at IS NULL"


def _entry(row: dict[str, Any]) -> RequestEntry:
    return RequestEntry(**row)


async def open_request(conn: Connection, opening: Opening) -> None:
    """Reserve the request's cost and record it; raises ``InsufficientCredits``."""
    await _credits.reserve(conn, opening.account_id, opening.reserve, opening.reserve_note)
    await conn.execute(
        "INSERT INTO requests (id, account_id, key_id, model, slug, status, created_at, "
        "reserved, user_id, webhook_url) SELECT %s, id, %s, %s, %s, 'QUEUED', stratus_now(), "
        "%s, %s, COALESCE(%s, webhook_url) FROM accounts WHERE id = %s",
        (opening.request_id, opening.key_id, opening.model, opening.slug, opening.reserve,
         opening.user_id, opening.webhook_url, opening.account_id))


async def open_batch(conn: Connection, openings: Sequence[Opening], note: str) -> None:
    """Reserve what a batch's requests may cost together, and record each of them (with
    no webhook: a batch is followed by its own status). All are of one account."""
    if not openings:
        return
    await _credits.reserve(conn, openings[0].account_id, sum(o.reserve for o in openings),
                           note)
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO requests (id, account_id, key_id, model, slug, status, created_at, "
            "reserved, user_id) VALUES (%s, %s, %s, %s, %s, 'QUEUED', stratus_now(), %s, %s)",
            [(o.request_id, o.account_id, o.key_id, o.model, o.slug, o.reserve, o.user_id)
             for o in openings])


async def _lock_open(conn: Connection, request_id: str) -> dict[str, Any] | None:
    """The request, locked, if it has not ended yet (closing it again must change nothing).
    A closer that waited on the lock sees the row as the first one left it: ended."""
    cur = await conn.execute(
        "SELECT account_id, reserved, webhook_url, stratus_now() AS now FROM requests "
        f"WHERE id = %s AND {_OPEN} FOR UPDATE", (request_id,))
    return await cur.fetchone()


async def discard_request(conn: Connection, request_id: str) -> None:
    row = await _lock_open(conn, request_id)
    if row is None:
        return
    await _credits.release(conn, row["account_id"], row["reserved"])
    await conn.execute("DELETE FROM requests WHERE id = %s", (request_id,))


async def start_request(conn: Connection, request_id: str, at: float) -> None:
    await conn.execute(f"UPDATE requests SET status = 'PROCESSING', started_at = %s "
                       f"WHERE id = %s AND {_OPEN}", (at, request_id))


async def close_request(conn: Connection, record: JobRecord, payload: str) -> bool:
    """Settle an ended job once: charge or release, fill in its history, and queue its
    webhook (``payload``) if it has one. True if a webhook was queued."""
    row = await _lock_open(conn, record.id)
    if row is None:
        return False  # closed before (or never opened): charged at most once
    metrics = record.metrics or Metrics()
    due = to_nano(record.cost)
    cost = await _credits.settle(conn, row["account_id"], row["reserved"], due, record.id)
    ended = record.completed_at or row["now"]
    webhook = row["webhook_url"] is not None
    await conn.execute(
        "UPDATE requests SET status = %s, started_at = %s, completed_at = %s, cost = %s, "
        "input_tokens = %s, output_tokens = %s, latency_ms = %s, error = %s, error_type = %s, "
        "webhook_status = %s, webhook_payload = %s, webhook_next_at = %s WHERE id = %s",
        (record.status.value, record.started_at, ended, cost, metrics.input_tokens,
         metrics.output_tokens, round((ended - record.created_at) * 1000, 3),
         record.error, record.error_type, "pending" if webhook else None,
         payload if webhook else None, ended if webhook else None, record.id))
    return webhook


async def abandon_request(conn: Connection, request_id: str, error: str) -> bool:
    row = await _lock_open(conn, request_id)
    if row is None:
        return False
    await _credits.release(conn, row["account_id"], row["reserved"])
    await conn.execute(
        "UPDATE requests SET status = 'FAILED', completed_at = %s, cost = 0, error = %s, "
        "error_type = %s WHERE id = %s",
        (row["now"], error, ErrorType.WORKER_LOST.value, request_id))
    return True


async def open_requests(conn: Connection, older_than: float, limit: int,
                        after: str | None) -> list[str]:
    cur = await conn.execute(
        f"SELECT id FROM requests WHERE {_OPEN} AND created_at < %s "
        "AND seq > COALESCE((SELECT seq FROM requests WHERE id = %s), 0) ORDER BY seq LIMIT %s",
        (older_than, after, limit))
    return [row["id"] for row in await cur.fetchall()]


async def get(conn: Connection, account_id: str, request_id: str) -> RequestEntry | None:
    cur = await conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM requests WHERE id = %s AND account_id = %s",
        (request_id, account_id))
    row = await cur.fetchone()
    return _entry(row) if row else None


async def history(conn: Connection, account_id: str,
                  query: HistoryQuery) -> tuple[list[RequestEntry], bool]:
    where, args = history_filter(account_id, query, "%s")
    cur = await conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM requests WHERE {where} "
        "ORDER BY seq DESC LIMIT %s", (*args, query.limit + 1))
    rows = await cur.fetchall()
    return [_entry(row) for row in rows[: query.limit]], len(rows) > query.limit


async def usage(conn: Connection, account_id: str, since: float,
                until: float | None) -> list[UsageRow]:
    cur = await conn.execute(
        "SELECT FLOOR(created_at / 86400)::BIGINT AS day, slug, COUNT(*) AS requests, "
        "COUNT(*) FILTER (WHERE status = 'COMPLETED') AS completed, "
        "COUNT(*) FILTER (WHERE status = 'FAILED') AS failed, "
        "COALESCE(SUM(input_tokens), 0)::BIGINT AS input_tokens, "
        "COALESCE(SUM(output_tokens), 0)::BIGINT AS output_tokens, "
        "COALESCE(SUM(cost), 0)::BIGINT AS cost "
        "FROM requests WHERE account_id = %s AND created_at >= %s "
        "AND (%s::DOUBLE PRECISION IS NULL OR created_at < %s) "
        "GROUP BY day, slug ORDER BY day, slug", (account_id, since, until, until))
    return [UsageRow(**row) for row in await cur.fetchall()]


async def sweep(conn: Connection, before: float) -> int:
    """Drop ended requests created before ``before`` (open ones keep their reservation)."""
    old = "created_at < %s AND completed_at IS NOT NULL"
    await conn.execute(f"DELETE FROM webhook_attempts WHERE request_id IN "
                       f"(SELECT id FROM requests WHERE {old})", (before,))
    cur = await conn.execute(f"DELETE FROM requests WHERE {old}", (before,))
    return cur.rowcount
