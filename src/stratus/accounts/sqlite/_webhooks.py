"""Webhook deliveries: the pending ones are columns of their request; attempts are logged."""

from __future__ import annotations

import sqlite3

from stratus.accounts._types import Delivery, DeliveryAttempt

_DUE = "webhook_status = 'pending' AND webhook_next_at <= ?"


def claim(conn: sqlite3.Connection, now: float, limit: int, lease: float) -> list[Delivery]:
    rows = conn.execute(
        "SELECT r.id, r.account_id, r.webhook_url, r.webhook_payload, r.webhook_attempts, "
        "r.completed_at, a.webhook_secret FROM requests r JOIN accounts a "
        f"ON a.id = r.account_id WHERE {_DUE} ORDER BY r.webhook_next_at LIMIT ?",
        (now, limit)).fetchall()
    conn.executemany("UPDATE requests SET webhook_next_at = ? WHERE id = ?",
                     [(now + lease, row["id"]) for row in rows])
    return [Delivery(request_id=row["id"], account_id=row["account_id"],
                     url=row["webhook_url"], secret=row["webhook_secret"],
                     payload=row["webhook_payload"], attempts=row["webhook_attempts"],
                     first_at=row["completed_at"]) for row in rows]


def next_at(conn: sqlite3.Connection) -> float | None:
    return conn.execute("SELECT MIN(webhook_next_at) FROM requests "
                        "WHERE webhook_status = 'pending'").fetchone()[0]


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
