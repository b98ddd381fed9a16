"""Webhook deliveries: the pending ones are columns of their request; attempts are logged.

Claims go round the accounts: each account's oldest due delivery first, then each one's
second, and so on, never more than a share of the sender's slots for one account, so an
account with many (or slow) deliveries cannot hold up another account's.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence

from stratus.accounts._types import Delivery, DeliveryAttempt

_DUE = "webhook_status = 'pending' AND webhook_next_at <= ?"


def claim(conn: sqlite3.Connection, now: float, limit: int, lease: float,
          per_account: int | None = None, running: Sequence[Delivery] = ()) -> list[Delivery]:
    share = per_account or limit
    busy = Counter(delivery.account_id for delivery in running if per_account is not None)
    skip = [delivery.request_id for delivery in running]
    # an account's turn n is its n-th oldest due delivery; turns are handed out in order
    rows = conn.execute(
        "SELECT * FROM (SELECT r.id, r.account_id, r.webhook_url, r.webhook_payload, "
        "r.webhook_attempts, r.completed_at, r.webhook_next_at, a.webhook_secret, "
        "ROW_NUMBER() OVER (PARTITION BY r.account_id ORDER BY r.webhook_next_at, r.id) "
        "AS turn FROM requests r JOIN accounts a ON a.id = r.account_id "
        f"WHERE {_DUE} AND r.id NOT IN ({_marks(skip)})) "
        "WHERE turn <= ? ORDER BY turn, webhook_next_at, id LIMIT ?",
        (now, *skip, share, limit + len(skip))).fetchall()
    # an account running n deliveries has n turns fewer: at most len(skip) rows fall out
    rows = [row for row in rows if row["turn"] + busy[row["account_id"]] <= share][:limit]
    conn.executemany("UPDATE requests SET webhook_next_at = ? WHERE id = ?",
                     [(now + lease, row["id"]) for row in rows])
    return [Delivery(request_id=row["id"], account_id=row["account_id"],
                     url=row["webhook_url"], secret=row["webhook_secret"],
                     payload=row["webhook_payload"], attempts=row["webhook_attempts"],
                     first_at=row["completed_at"]) for row in rows]


def next_at(conn: sqlite3.Connection, per_account: int | None = None,
            running: Sequence[Delivery] = ()) -> float | None:
    """The earliest pending delivery that is not running and whose account has a turn left."""
    busy = Counter(delivery.account_id for delivery in running)
    full = [account for account, n in busy.items()
            if per_account is not None and n >= per_account]
    skip = [delivery.request_id for delivery in running]
    return conn.execute(
        "SELECT MIN(webhook_next_at) FROM requests WHERE webhook_status = 'pending' "
        f"AND id NOT IN ({_marks(skip)}) AND account_id NOT IN ({_marks(full)})",
        (*skip, *full)).fetchone()[0]


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def record(conn: sqlite3.Connection, delivery: Delivery, attempt: DeliveryAttempt,
           next_attempt: float | None, delivered: bool) -> None:
    conn.execute(
        "INSERT INTO webhook_attempts (request_id, attempt, at, url, status_code, error, "
        "duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (delivery.request_id, attempt.attempt, attempt.at, attempt.url, attempt.status_code,
         attempt.error, attempt.duration_ms))
    status = "delivered" if delivered else "pending" if next_attempt is not None else "failed"
    conn.execute(
        "UPDATE requests SET webhook_status = ?, webhook_attempts = ?, webhook_next_at = ?, "
        "webhook_payload = CASE WHEN ? = 'pending' THEN webhook_payload END WHERE id = ?",
        (status, attempt.attempt, next_attempt, status, delivery.request_id))


def attempts(conn: sqlite3.Connection, request_id: str) -> list[DeliveryAttempt]:
    rows = conn.execute(
        "SELECT attempt, at, url, status_code, error, duration_ms FROM webhook_attempts "
        "WHERE request_id = ? ORDER BY seq", (request_id,))
    return [DeliveryAttempt(**dict(row)) for row in rows]
