"""Webhook deliveries: the pending ones are columns of their request; attempts are logged.

Claims go round the accounts: each account's oldest due delivery first, then each one's
second, and so on, never more than a share of the sender's slots for one account, so an
account with many (or slow) deliveries cannot hold up another account's.

Several nodes send at once. A claim is one statement: it ranks the due deliveries, locks the
first ones in turn order with ``FOR UPDATE SKIP LOCKED`` (a delivery another node is claiming
right now is passed over, never waited for) and moves their ``webhook_next_at`` past the
lease, so that they are no longer due for anyone. A row locked after another node's claim
committed is checked again as that claim left it, and is no longer due: no delivery is handed
to two senders.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from stratus._postgres import Connection
from stratus.accounts._types import Delivery, DeliveryAttempt

_DUE = "r.webhook_status = 'pending' AND r.webhook_next_at <= %(now)s"

_CLAIM = f"""
WITH busy AS (
    SELECT * FROM unnest(%(busy_accounts)s::text[], %(busy_counts)s::int[]) AS b (account_id, n)
), ranked AS (
    -- an account's turn n is its n-th oldest due delivery; turns are handed out in order
    SELECT r.id, r.account_id, r.webhook_next_at AS due_at,
           ROW_NUMBER() OVER (PARTITION BY r.account_id
                              ORDER BY r.webhook_next_at, r.id COLLATE "C") AS turn
    FROM requests r
    WHERE {_DUE} AND r.id <> ALL (%(skip)s::text[])
), locked AS (
    -- an account running n deliveries has n turns fewer
    SELECT r.id, p.turn, p.due_at
    FROM ranked p LEFT JOIN busy b ON b.account_id = p.account_id
    JOIN requests r ON r.id = p.id
    WHERE p.turn + COALESCE(b.n, 0) <= %(share)s AND {_DUE}
    ORDER BY p.turn, p.due_at, p.id COLLATE "C"
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
), claimed AS (
    UPDATE requests r SET webhook_next_at = %(now)s + %(lease)s
    FROM locked l, accounts a
    WHERE r.id = l.id AND a.id = r.account_id
    RETURNING r.id, r.account_id, r.webhook_url, r.webhook_payload, r.webhook_attempts,
              r.completed_at, a.webhook_secret, l.turn, l.due_at
)
SELECT * FROM claimed ORDER BY turn, due_at, id COLLATE "C"
"""


async def claim(conn: Connection, now: float, limit: int, lease: float,
                per_account: int | None = None,
                running: Sequence[Delivery] = ()) -> list[Delivery]:
    busy = Counter(delivery.account_id for delivery in running if per_account is not None)
    cur = await conn.execute(_CLAIM, {
        "now": now, "lease": lease, "limit": limit, "share": per_account or limit,
        "busy_accounts": list(busy), "busy_counts": list(busy.values()),
        "skip": [delivery.request_id for delivery in running]})
    return [Delivery(request_id=row["id"], account_id=row["account_id"],
                     url=row["webhook_url"], secret=row["webhook_secret"],
                     payload=row["webhook_payload"], attempts=row["webhook_attempts"],
                     first_at=row["completed_at"]) for row in await cur.fetchall()]


async def next_at(conn: Connection, per_account: int | None = None,
                  running: Sequence[Delivery] = ()) -> float | None:
    """The earliest pending delivery that is not running and whose account has a turn left."""
    busy = Counter(delivery.account_id for delivery in running)
    full = [account for account, n in busy.items()
            if per_account is not None and n >= per_account]
    cur = await conn.execute(
        "SELECT MIN(webhook_next_at) AS at FROM requests WHERE webhook_status = 'pending' "
        "AND id <> ALL (%s::text[]) AND account_id <> ALL (%s::text[])",
        ([delivery.request_id for delivery in running], full))
    row = await cur.fetchone()
    return None if row is None else row["at"]


async def record(conn: Connection, delivery: Delivery, attempt: DeliveryAttempt,
                 next_attempt: float | None, delivered: bool) -> None:
    await conn.execute(
        "INSERT INTO webhook_attempts (request_id, attempt, at, url, status_code, error, "
        "duration_ms) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (delivery.request_id, attempt.attempt, attempt.at, attempt.url, attempt.status_code,
         attempt.error, attempt.duration_ms))
    status = "delivered" if delivered else "pending" if next_attempt is not None else "failed"
    await conn.execute(
        "UPDATE requests SET webhook_status = %(status)s, webhook_attempts = %(attempt)s, "
        "webhook_next_at = %(next)s, webhook_payload = CASE WHEN %(status)s = 'pending' "
        "THEN webhook_payload END WHERE id = %(id)s",
        {"status": status, "attempt": attempt.attempt, "next": next_attempt,
         "id": delivery.request_id})


async def attempts(conn: Connection, request_id: str) -> list[DeliveryAttempt]:
    cur = await conn.execute(
        "SELECT attempt, at, url, status_code, error, duration_ms FROM webhook_attempts "
        "WHERE request_id = %s ORDER BY seq", (request_id,))
    return [DeliveryAttempt(**row) for row in await cur.fetchall()]
