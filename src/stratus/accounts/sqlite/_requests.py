"""Request history, and the opening and closing of a request's credits."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from stratus.accounts._rules import history_filter
from stratus.accounts._types import HistoryQuery, Opening, RequestEntry, UsageRow, to_nano
from stratus.accounts.sqlite import _credits
from stratus.store import ErrorType, JobRecord, Metrics

_ENTRY_COLUMNS = ", ".join(RequestEntry.__slots__)  # type: ignore[attr-defined]
_OPEN = "completed_at IS NULL"


def _entry(row: sqlite3.Row) -> RequestEntry:
    return RequestEntry(**{name: row[name] for name in row.keys()})  # noqa: SIM118


def open_request(conn: sqlite3.Connection, opening: Opening, now: float) -> None:
    _credits.reserve(conn, opening.account_id, opening.reserve, opening.reserve_note)
    conn.execute(
        "INSERT INTO requests (id, account_id, key_id, model, slug, status, created_at, "
        "reserved, user_id, webhook_url) VALUES (?, ?, ?, ?, ?, 'QUEUED', ?, ?, ?, "
        "COALESCE(?, (SELECT webhook_url FROM accounts WHERE id = ?)))",
        (opening.request_id, opening.account_id, opening.key_id, opening.model, opening.slug,
         now, opening.reserve, opening.user_id, opening.webhook_url, opening.account_id))


def open_batch(conn: sqlite3.Connection, openings: Sequence[Opening], note: str,
               now: float) -> None:
    """Reserve what a batch's requests may cost together, and record each of them (with
    no webhook: a batch is followed by its own status). All are of one account."""
    if not openings:
        return
    _credits.reserve(conn, openings[0].account_id, sum(o.reserve for o in openings), note)
    conn.executemany(
        "INSERT INTO requests (id, account_id, key_id, model, slug, status, created_at, "
        "reserved, user_id) VALUES (?, ?, ?, ?, ?, 'QUEUED', ?, ?, ?)",
        [(o.request_id, o.account_id, o.key_id, o.model, o.slug, now, o.reserve, o.user_id)
         for o in openings])


def _open_row(conn: sqlite3.Connection, request_id: str) -> sqlite3.Row | None:
    """The request if it has not ended yet (closing it again must change nothing)."""
    return conn.execute(
        f"SELECT account_id, reserved, webhook_url FROM requests WHERE id = ? AND {_OPEN}",
        (request_id,)).fetchone()


def discard_request(conn: sqlite3.Connection, request_id: str) -> None:
    row = _open_row(conn, request_id)
    if row is None:
        return
    _credits.release(conn, row["account_id"], row["reserved"])
    conn.execute("DELETE FROM requests WHERE id = ?", (request_id,))


def start_request(conn: sqlite3.Connection, request_id: str, at: float) -> None:
    conn.execute(f"UPDATE requests SET status = 'PROCESSING', started_at = ? "
                 f"WHERE id = ? AND {_OPEN}", (at, request_id))


def close_request(conn: sqlite3.Connection, record: JobRecord, payload: str,
                  now: float) -> bool:
    row = _open_row(conn, record.id)
    if row is None:
        return False  # closed before (or never opened): charged at most once
    metrics = record.metrics or Metrics()
    due = to_nano(record.cost)
    cost = _credits.settle(conn, row["account_id"], row["reserved"], due, record.id, now)
    ended = record.completed_at or now
    webhook = row["webhook_url"] is not None
    conn.execute(
        "UPDATE requests SET status = ?, started_at = ?, completed_at = ?, cost = ?, "
        "input_tokens = ?, output_tokens = ?, latency_ms = ?, error = ?, error_type = ?, "
        "webhook_status = ?, webhook_payload = ?, webhook_next_at = ? WHERE id = ?",
        (record.status.value, record.started_at, ended, cost, metrics.input_tokens,
         metrics.output_tokens, round((ended - record.created_at) * 1000, 3),
         record.error, record.error_type, "pending" if webhook else None,
         payload if webhook else None, ended if webhook else None, record.id))
    return webhook


def abandon_request(conn: sqlite3.Connection, request_id: str, error: str,
                    now: float) -> bool:
    row = _open_row(conn, request_id)
    if row is None:
        return False
    _credits.release(conn, row["account_id"], row["reserved"])
    conn.execute(
        "UPDATE requests SET status = 'FAILED', completed_at = ?, cost = 0, error = ?, "
        "error_type = ? WHERE id = ?", (now, error, ErrorType.WORKER_LOST.value, request_id))
    return True


def open_requests(conn: sqlite3.Connection, older_than: float, limit: int,
                  after: str | None) -> list[str]:
    rows = conn.execute(
        f"SELECT id FROM requests WHERE {_OPEN} AND created_at < ? "
        "AND seq > COALESCE((SELECT seq FROM requests WHERE id = ?), 0) ORDER BY seq LIMIT ?",
        (older_than, after, limit))
    return [row["id"] for row in rows]


def get(conn: sqlite3.Connection, account_id: str, request_id: str) -> RequestEntry | None:
    row = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM requests WHERE id = ? AND account_id = ?",
        (request_id, account_id)).fetchone()
    return _entry(row) if row else None


def history(conn: sqlite3.Connection, account_id: str,
            query: HistoryQuery) -> tuple[list[RequestEntry], bool]:
    where, args = history_filter(account_id, query, "?")
    rows = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM requests WHERE {where} "
        "ORDER BY seq DESC LIMIT ?", (*args, query.limit + 1)).fetchall()
    return [_entry(row) for row in rows[: query.limit]], len(rows) > query.limit


def usage(conn: sqlite3.Connection, account_id: str, since: float,
          until: float | None) -> list[UsageRow]:
    rows = conn.execute(
        "SELECT CAST(created_at / 86400 AS INTEGER) AS day, slug, COUNT(*) AS requests, "
        "SUM(status = 'COMPLETED') AS completed, SUM(status = 'FAILED') AS failed, "
        "COALESCE(SUM(input_tokens), 0) AS input_tokens, "
        "COALESCE(SUM(output_tokens), 0) AS output_tokens, COALESCE(SUM(cost), 0) AS cost "
        "FROM requests WHERE account_id = ? AND created_at >= ? AND created_at < ? "
        "GROUP BY day, slug ORDER BY day, slug",
        (account_id, since, float("inf") if until is None else until))
    return [UsageRow(**dict(row)) for row in rows]


def sweep(conn: sqlite3.Connection, before: float) -> int:
    """Drop ended requests created before ``before`` (open ones keep their reservation)."""
    old = "created_at < ? AND completed_at IS NOT NULL"
    conn.execute(f"DELETE FROM webhook_attempts WHERE request_id IN "
                 f"(SELECT id FROM requests WHERE {old})", (before,))
    return conn.execute(f"DELETE FROM requests WHERE {old}", (before,)).rowcount
