"""The scale-out job store: PostgreSQL for state, Redis pub/sub (optional) for wake-ups.

- **Claim** is one statement: the oldest QUEUED job of the worker's models, taken with
  ``FOR UPDATE SKIP LOCKED`` (claimers never wait on one another), gets a fresh lease token
  (a fencing token), an owner and ``lease_expires_at`` on the database's clock.
- **Heartbeat** renews every lease of the worker in one statement and records the worker.
  Claiming also marks the job's request started in the history (``started``).
- **Complete / fail** change the row only ``WHERE lease_token = $t``: a worker whose lease
  lapsed (and whose job was handed to another) changes nothing. The request's settlement
  (credits, history, webhook) runs in the same transaction (``settle``), so a job is never
  ended without being settled, nor settled twice.
- **Sweep** (lapsed leases, retention) runs under a transaction-scoped advisory lock: any node
  may run it, one at a time, and a second one skips rather than waits.
- Wake-ups are hints published after commit; waiters re-read at least every ``POLL`` s.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from stratus._postgres import SWEEP_LOCK, Connection, Postgres
from stratus.store._hints import POLL, RedisHints
from stratus.store._notify import Notifier
from stratus.store._types import (
    Claim,
    ErrorType,
    IdempotencyConflict,
    IdempotentReplay,
    JobRecord,
    Message,
    Metrics,
    NewJob,
    Priority,
    QueueFull,
    Status,
    SweepReport,
)

# Runs inside the transaction that ends a job: settles its request; True if a webhook is due.
Settle = Callable[[Connection, JobRecord], Awaitable[bool]]
# Runs inside the transaction that queues a job, just before its insert (admission).
BeforeInsert = Callable[[Connection], Awaitable[None]]
# Runs inside the transaction that claims a job: marks its request started.
Started = Callable[[Connection, JobRecord], Awaitable[None]]
SEEN_EVERY = 1.0  # seconds between a worker's sightings recorded by its claims

KEEP_EXPIRED = 300.0  # as the SQLite store: expired records are deleted this much later
_COLUMNS = ("id, account_id, model, requested_model, status, request, created_at, attempts, "
            "started_at, completed_at, expires_at, result, metrics, error, error_type, "
            "input_tokens, handbacks, seq, priority")
_POSITION = ("(SELECT count(*) FROM jobs q WHERE q.status = 'QUEUED' AND q.model = j.model "
             "AND (q.priority, q.seq) < (j.priority, j.seq)) + 1")
# An ended job's expiry: its own retention (a batch's request), else the store's (``ttl``).
_EXPIRES = "stratus_now() + COALESCE(retain, %(ttl)s)"
_INSERT = (
    "INSERT INTO jobs AS j (id, account_id, model, requested_model, request, input_tokens, "
    "created_at, status, error, error_type, completed_at, expires_at, priority, retain, "
    "batch_id, custom_id) VALUES (%(id)s, %(account)s, %(model)s, %(requested)s, %(request)s, "
    "%(tokens)s, stratus_now(), %(status)s, %(error)s, %(error_type)s, "
    "CASE WHEN %(error)s::text IS NULL THEN NULL ELSE stratus_now() END, "
    "CASE WHEN %(error)s::text IS NULL THEN NULL ELSE stratus_now() + %(ttl)s END, "
    "%(priority)s, %(retain)s, %(batch)s, %(custom)s)")
_SELECT = (f"SELECT {_COLUMNS}, CASE WHEN status = 'QUEUED' THEN {_POSITION} END AS position, "
           "stratus_now() AS now FROM jobs j")


def _record(row: dict[str, Any]) -> JobRecord:
    return JobRecord(
        id=row["id"], account_id=row["account_id"], model=row["model"],
        requested_model=row["requested_model"], status=Status(row["status"]),
        request=json.loads(row["request"]), created_at=row["created_at"],
        attempts=row["attempts"], started_at=row["started_at"],
        completed_at=row["completed_at"], expires_at=row["expires_at"],
        result=Message.from_dict(json.loads(row["result"])) if row["result"] else None,
        metrics=Metrics.from_dict(json.loads(row["metrics"])) if row["metrics"] else None,
        error=row["error"], error_type=row["error_type"], queue_position=row.get("position"),
        input_tokens=row["input_tokens"], handbacks=row["handbacks"])


async def _fetch(conn: Connection, job_id: str, expired: bool = False) -> JobRecord | None:
    cur = await conn.execute(f"{_SELECT} WHERE id = %s", (job_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    if not expired and row["expires_at"] is not None and row["expires_at"] <= row["now"]:
        return None
    return _record(row)


async def _no_settle(conn: Connection, record: JobRecord) -> bool:
    return False


async def _no_start(conn: Connection, record: JobRecord) -> None:
    return None


class PostgresJobStore:
    def __init__(self, pg: Postgres, *, lease_seconds: float = 30.0, max_attempts: int = 3,
                 result_ttl: float = 3600.0, idempotency_ttl: float = 86400.0,
                 keep_expired: float = KEEP_EXPIRED, hints: RedisHints | None = None,
                 notifier: Notifier | None = None, settle: Settle = _no_settle,
                 started: Started = _no_start) -> None:
        self._pg = pg
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._result_ttl = result_ttl
        self._idempotency_ttl = idempotency_ttl
        self._keep_expired = keep_expired
        self._notify = notifier or Notifier()
        self._hints = hints
        self._settle = settle
        self._started = started
        self._seen_at: dict[str, float] = {}
        self._on_webhook: list[Callable[[], None]] = []

    def on_webhook(self, listener: Callable[[], None]) -> None:
        """Called when a job's settlement queued a webhook (here or, with hints, anywhere)."""
        self._on_webhook.append(listener)
        if self._hints is not None:
            self._hints.on_webhook(listener)

    # -- wake-ups (after commit) -----------------------------------------------------------

    async def _changed(self, *job_ids: str, ended: bool = False, work: bool = False,
                       webhook: bool = False) -> None:
        self._notify.job_changed(*job_ids, ended=ended)
        if work:
            self._notify.work_available()
        if webhook:
            for listener in self._on_webhook:
                listener()
        if self._hints is not None:
            await self._hints.changed(job_ids, ended=ended, work=work, webhook=webhook)

    # -- submitting and reading ------------------------------------------------------------

    async def submit(self, job: NewJob,
                     before_insert: BeforeInsert | None = None) -> tuple[JobRecord, bool]:
        async with self._pg.transaction() as conn:
            record, created = await self._submit(conn, job, before_insert)
        if created:
            await self._changed(job.id, work=not job.blocked)
        return record, created

    async def _submit(self, conn: Connection, job: NewJob,
                      before_insert: BeforeInsert | None) -> tuple[JobRecord, bool]:
        if job.idempotency_key is not None:
            # one admission per key at a time, across every node
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                               (job.account_id, job.idempotency_key))
            found = await self._idempotent(conn, job.account_id, job.idempotency_key)
            if found is not None:
                job_id, body_hash = found
                if body_hash != job.body_hash:
                    raise IdempotencyConflict(job_id)
                earlier = await _fetch(conn, job_id)
                if earlier is None:
                    raise IdempotentReplay(job_id)
                return earlier, False
        if before_insert is not None:
            await before_insert(conn)
        if not job.blocked and job.max_queue is not None:
            # the depth check and the insert are one step across nodes: a lock per model,
            # taken last so that it is held only for the insert
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('queue'), hashtext(%s))",
                               (job.model,))
            depth = await self._queued(conn, job.model, interactive=True)
            if depth >= job.max_queue:
                raise QueueFull(depth)
        if job.idempotency_key is not None:
            await conn.execute(
                "INSERT INTO idempotency_keys VALUES (%s, %s, %s, %s, stratus_now()) "
                "ON CONFLICT (account_id, key) DO UPDATE SET body_hash = EXCLUDED.body_hash, "
                "job_id = EXCLUDED.job_id, created_at = EXCLUDED.created_at",
                (job.account_id, job.idempotency_key, job.body_hash, job.id))
        cur = await conn.execute(
            f"{_INSERT} RETURNING {_COLUMNS}, "
            f"CASE WHEN status = 'QUEUED' THEN {_POSITION} END AS position", self._row(job))
        row = await cur.fetchone()
        assert row is not None
        return _record(row), True

    async def submit_many(self, jobs: Sequence[NewJob],
                          before_insert: BeforeInsert | None = None) -> None:
        async with self._pg.transaction() as conn:
            if before_insert is not None:
                await before_insert(conn)
            async with conn.cursor() as cur:
                await cur.executemany(_INSERT, [self._row(job) for job in jobs])
        await self._changed(work=any(not job.blocked for job in jobs))

    def _row(self, job: NewJob) -> dict[str, Any]:
        """The values of :data:`_INSERT` for ``job``: QUEUED, or FAILED at once if it is
        blocked (kept like any ended job)."""
        return {"id": job.id, "account": job.account_id, "model": job.model,
                "requested": job.requested_model,
                "request": json.dumps(job.request, separators=(",", ":")),
                "tokens": job.input_tokens,
                "status": Status.FAILED.value if job.blocked else Status.QUEUED.value,
                "error": job.blocked, "error_type": job.blocked_type if job.blocked else None,
                "ttl": job.retain or self._result_ttl, "priority": int(job.priority),
                "retain": job.retain, "batch": job.batch_id, "custom": job.custom_id}

    async def _idempotent(self, conn: Connection, account_id: str,
                          key: str) -> tuple[str, str] | None:
        cur = await conn.execute(
            "SELECT job_id, body_hash FROM idempotency_keys WHERE account_id = %s AND key = %s "
            "AND created_at > stratus_now() - %s", (account_id, key, self._idempotency_ttl))
        row = await cur.fetchone()
        return None if row is None else (row["job_id"], row["body_hash"])

    async def idempotent(self, account_id: str, key: str) -> tuple[str, str] | None:
        async with self._pg.connection() as conn:
            return await self._idempotent(conn, account_id, key)

    @staticmethod
    async def _queued(conn: Connection, model: str, interactive: bool = False) -> int:
        """Jobs of ``model`` waiting (``interactive``: only those ahead of a batch's)."""
        only = f" AND priority = {int(Priority.INTERACTIVE)}" if interactive else ""
        cur = await conn.execute(
            f"SELECT count(*) AS n FROM jobs WHERE status = 'QUEUED' AND model = %s{only}",
            (model,))
        row = await cur.fetchone()
        assert row is not None
        return int(row["n"])

    async def queued(self, model: str) -> int:
        async with self._pg.connection() as conn:
            return await self._queued(conn, model)

    async def waiting(self, models: Collection[str]) -> set[str]:
        if not models:
            return set()
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "SELECT m FROM unnest(%s::text[]) AS m WHERE EXISTS "
                "(SELECT 1 FROM jobs WHERE status = 'QUEUED' AND model = m)", (list(models),))
            return {row["m"] for row in await cur.fetchall()}

    async def queue_stats(self) -> dict[str, tuple[int, float]]:
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "SELECT model, count(*) AS n, greatest(stratus_now() - min(created_at), 0) "
                "AS wait FROM jobs WHERE status = 'QUEUED' GROUP BY model")
            rows = await cur.fetchall()
        return {row["model"]: (int(row["n"]), float(row["wait"])) for row in rows}

    async def get(self, job_id: str, *, expired: bool = False) -> JobRecord | None:
        async with self._pg.connection() as conn:
            return await _fetch(conn, job_id, expired)

    # -- the worker's side -----------------------------------------------------------------

    async def claim(self, models: Collection[str], worker_id: str) -> Claim | None:
        if not models:
            return None
        token = uuid.uuid4().hex
        async with self._pg.connection() as conn:  # the claim is one statement
            cur = await conn.execute(
                "UPDATE jobs SET status = 'PROCESSING', started_at = stratus_now(), "
                "attempts = attempts + 1, lease_token = %(token)s, lease_owner = %(owner)s, "
                "lease_expires_at = stratus_now() + %(lease)s "
                "WHERE seq = (SELECT seq FROM jobs WHERE status = 'QUEUED' "
                "AND model = ANY(%(models)s) ORDER BY priority, seq "
                "FOR UPDATE SKIP LOCKED LIMIT 1) "
                f"AND status = 'QUEUED' RETURNING {_COLUMNS}",
                {"token": token, "owner": worker_id, "lease": self._lease,
                 "models": list(models)})
            row = await cur.fetchone()
            await self._seen(conn, worker_id, models)
            if row is None:
                return None
            record = _record(row)
            await self._started(conn, record)  # the history's PROCESSING: cosmetic if lost
        await self._changed(record.id)
        return Claim(job=record, token=token, owner=worker_id)

    async def _seen(self, conn: Connection, worker_id: str, models: Collection[str] = (),
                    force: bool = False) -> None:
        """Record that the worker is alive (what it serves, when it was last seen): at most
        once a second from its claims, at every heartbeat."""
        now = time.monotonic()
        if not force and now - self._seen_at.get(worker_id, -SEEN_EVERY) < SEEN_EVERY:
            return
        self._seen_at[worker_id] = now
        await conn.execute(
            "INSERT INTO workers (id, models, started_at, seen_at) "
            "VALUES (%s, %s, stratus_now(), stratus_now()) ON CONFLICT (id) DO UPDATE SET "
            "seen_at = EXCLUDED.seen_at, models = CASE WHEN cardinality(EXCLUDED.models) > 0 "
            "THEN EXCLUDED.models ELSE workers.models END",
            (worker_id, list(models)))

    async def report_health(self, worker_id: str, health: dict[str, dict[str, Any]]) -> None:
        async with self._pg.connection() as conn:
            await conn.execute(
                "INSERT INTO workers (id, models, started_at, seen_at, health) "
                "VALUES (%s, %s, stratus_now(), stratus_now(), %s) ON CONFLICT (id) DO UPDATE "
                "SET seen_at = EXCLUDED.seen_at, health = EXCLUDED.health",
                (worker_id, list(health), json.dumps(health)))

    async def model_health(self) -> dict[str, list[dict[str, Any]]]:
        """Of the workers seen within a lease."""
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "SELECT health FROM workers WHERE health IS NOT NULL "
                "AND seen_at > stratus_now() - %s", (self._lease,))
            rows = await cur.fetchall()
        found: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            for model, state in json.loads(row["health"]).items():
                found.setdefault(model, []).append(state)
        return found

    async def heartbeat(self, claim: Claim) -> bool:
        """Renews every lease the claim's worker holds (one statement); True if this claim's
        is among them."""
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "WITH renewed AS (UPDATE jobs SET lease_expires_at = stratus_now() + %(lease)s "
                "WHERE status = 'PROCESSING' AND lease_owner = %(owner)s "
                "RETURNING id, lease_token) "
                "SELECT count(*) AS n FROM renewed WHERE id = %(id)s AND lease_token = %(token)s",
                {"lease": self._lease, "owner": claim.owner, "id": claim.job.id,
                 "token": claim.token})
            row = await cur.fetchone()
            await self._seen(conn, claim.owner, force=True)
        return bool(row and row["n"])

    async def complete(self, claim: Claim, result: Message,
                       metrics: Metrics) -> JobRecord | None:
        return await self._end(claim, Status.COMPLETED,
                               {"result": json.dumps(result.to_dict()),
                                "metrics": json.dumps(metrics.to_dict())})

    async def fail(self, claim: Claim, error: str, error_type: str) -> JobRecord | None:
        return await self._end(claim, Status.FAILED, {"error": error, "error_type": error_type})

    async def _end(self, claim: Claim, status: Status,
                   fields: dict[str, str]) -> JobRecord | None:
        cols = "".join(f", {name} = %({name})s" for name in fields)
        async with self._pg.transaction() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET status = %(status)s, completed_at = stratus_now(), "
                f"expires_at = {_EXPIRES}, lease_token = NULL, lease_owner = NULL, "
                f"lease_expires_at = NULL{cols} "
                "WHERE id = %(id)s AND status = 'PROCESSING' AND lease_token = %(token)s "
                f"RETURNING {_COLUMNS}",
                {"status": status.value, "ttl": self._result_ttl, **fields,
                 "id": claim.job.id, "token": claim.token})
            row = await cur.fetchone()
            if row is None:
                return None
            ended = _record(row)
            webhook = await self._settle(conn, ended)
        await self._changed(ended.id, ended=True, webhook=webhook)
        return ended

    async def record_usage(self, claim: Claim, metrics: Metrics) -> bool:
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET metrics = %s, lease_token = NULL WHERE id = %s "
                "AND status = 'FAILED' AND error_type = %s AND lease_token = %s "
                "AND metrics IS NULL",
                (json.dumps(metrics.to_dict()), claim.job.id, ErrorType.CANCELLED.value,
                 claim.token))
            return cur.rowcount == 1

    async def fail_unserved(self, models: Collection[str], error: str) -> list[str]:
        """Only jobs no live worker could run: QUEUED ones of an unserved model, and held
        ones whose worker has not been seen for a lease (other workers may serve other
        models: this is for a deployment whose every worker is this process's)."""
        async with self._pg.transaction() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET status = 'FAILED', error = %(error)s, error_type = %(type)s, "
                f"completed_at = stratus_now(), expires_at = {_EXPIRES}, "
                "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL "
                "WHERE status IN ('QUEUED', 'PROCESSING') AND NOT (model = ANY(%(models)s)) "
                "RETURNING id",
                {"error": error, "type": ErrorType.ENGINE.value, "ttl": self._result_ttl,
                 "models": list(models)})
            ids = [row["id"] for row in await cur.fetchall()]
        await self._changed(*ids, ended=True)
        return ids

    async def release(self, claim: Claim, busy: bool = False) -> bool:
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "UPDATE jobs SET status = 'QUEUED', attempts = GREATEST(attempts - 1, 0), "
                "handbacks = handbacks + %s, started_at = NULL, lease_token = NULL, "
                "lease_owner = NULL, lease_expires_at = NULL WHERE id = %s "
                "AND status = 'PROCESSING' AND lease_token = %s",
                (int(busy), claim.job.id, claim.token))
            done = cur.rowcount == 1
        if done:
            await self._changed(claim.job.id, work=True)
        return done

    # -- the client's side -----------------------------------------------------------------

    async def cancel(self, job_id: str) -> tuple[JobRecord | None, bool]:
        async with self._pg.connection() as conn:  # the update, then the record as it is
            cur = await conn.execute(
                "UPDATE jobs SET status = 'FAILED', error = 'cancelled', error_type = %(type)s, "
                f"completed_at = stratus_now(), expires_at = {_EXPIRES}, "
                "lease_owner = NULL, lease_expires_at = NULL "
                "WHERE id = %(id)s AND status IN ('QUEUED', 'PROCESSING') "
                "AND (expires_at IS NULL OR expires_at > stratus_now())",
                {"type": ErrorType.CANCELLED.value, "ttl": self._result_ttl, "id": job_id})
            changed = cur.rowcount == 1
            record = await _fetch(conn, job_id)
        if changed:
            await self._changed(job_id, ended=True)
        return record, changed

    async def end_queued(self, job_ids: Collection[str], error: str,
                         error_type: str) -> list[JobRecord]:
        async with self._pg.connection() as conn:
            cur = await conn.execute(
                "UPDATE jobs j SET status = 'FAILED', error = %(error)s, error_type = %(type)s, "
                f"completed_at = stratus_now(), expires_at = {_EXPIRES} "
                "WHERE id = ANY(%(ids)s) AND status = 'QUEUED' "
                f"RETURNING {_COLUMNS}",
                {"error": error, "type": error_type, "ttl": self._result_ttl,
                 "ids": list(job_ids)})
            ended = [_record(row) for row in await cur.fetchall()]
        await self._changed(*(record.id for record in ended), ended=True)
        return ended

    async def wait_for_change(self, job_id: str, status: Status,
                              timeout: float) -> JobRecord | None:
        return await self._notify.wait(job_id, lambda: self.get(job_id),
                                       lambda record: record.status is not status, timeout,
                                       poll=POLL)

    async def wait_until_ended(self, job_id: str, timeout: float) -> JobRecord | None:
        return await self._notify.wait(job_id, lambda: self.get(job_id),
                                       lambda record: record.status.is_terminal(), timeout,
                                       ended_only=True, poll=POLL)

    async def wait_for_work(self, timeout: float) -> None:
        await self._notify.wait_for_work(min(timeout, POLL))

    # -- housekeeping ----------------------------------------------------------------------

    async def sweep(self) -> SweepReport:
        async with self._pg.transaction() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS mine",
                                     (SWEEP_LOCK,))
            row = await cur.fetchone()
            if not row or not row["mine"]:
                return SweepReport()  # another node is sweeping right now
            report = await self._sweep(conn)
        await self._changed(*report.requeued, work=bool(report.requeued))
        await self._changed(*report.failed, ended=True, webhook=bool(report.failed))
        return report

    async def _sweep(self, conn: Connection) -> SweepReport:
        cur = await conn.execute(
            "UPDATE jobs SET status = 'FAILED', error = 'the worker running this request "
            "stopped responding ' || attempts || ' times; giving up', error_type = %(type)s, "
            f"completed_at = stratus_now(), expires_at = {_EXPIRES}, "
            "lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL "
            "WHERE status = 'PROCESSING' AND lease_expires_at < stratus_now() "
            "AND attempts >= %(attempts)s RETURNING id",
            {"type": ErrorType.WORKER_LOST.value, "ttl": self._result_ttl,
             "attempts": self._max_attempts})
        failed = [row["id"] for row in await cur.fetchall()]
        for job_id in failed:
            ended = await _fetch(conn, job_id, expired=True)
            assert ended is not None
            await self._settle(conn, ended)
        cur = await conn.execute(
            "UPDATE jobs SET status = 'QUEUED', started_at = NULL, lease_token = NULL, "
            "lease_owner = NULL, lease_expires_at = NULL "
            "WHERE status = 'PROCESSING' AND lease_expires_at < stratus_now() RETURNING id")
        requeued = [row["id"] for row in await cur.fetchall()]
        cur = await conn.execute("DELETE FROM jobs WHERE expires_at <= stratus_now() - %s",
                                 (self._keep_expired,))
        expired = cur.rowcount
        await conn.execute("DELETE FROM idempotency_keys WHERE created_at <= stratus_now() - %s",
                           (self._idempotency_ttl,))
        await conn.execute("DELETE FROM workers WHERE seen_at <= stratus_now() - 86400")
        return SweepReport(requeued=tuple(requeued), failed=tuple(failed), expired=expired)

    async def close(self) -> None:
        return None
