"""The embedded job store: SQLite for state, in-process notification for wake-ups."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any

from stratus._sqlite import SqliteDB
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    model TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    expires_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_owner TEXT,
    lease_expires_at REAL,
    result TEXT,
    metrics TEXT,
    error TEXT,
    error_type TEXT,
    input_tokens INTEGER,
    handbacks INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 0,
    retain REAL,
    batch_id TEXT,
    custom_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (status, lease_expires_at);
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    account_id TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (account_id, key)
);
"""

BeforeInsert = Callable[[sqlite3.Connection, float], None]
# An ended job's expiry: its own retention (a batch's request), else the store's.
_EXPIRES = "? + COALESCE(retain, ?)"
_ENDED = (Status.COMPLETED.value, Status.FAILED.value)
# Expired records (404 to clients) are kept this much longer before they are deleted, so
# that a settlement pass (every minute) still finds a job whose request was left open.
KEEP_EXPIRED = 300.0
_INSERT = (
    "INSERT INTO jobs (id, account_id, model, requested_model, request, input_tokens, "
    "created_at, status, error, error_type, completed_at, expires_at, priority, retain, "
    "batch_id, custom_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a jobs table made by an earlier version up to this one."""
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}
    if "input_tokens" not in columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN input_tokens INTEGER")
    if "handbacks" not in columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN handbacks INTEGER NOT NULL DEFAULT 0")
    if "priority" not in columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
        conn.execute("ALTER TABLE jobs ADD COLUMN retain REAL")
        conn.execute("ALTER TABLE jobs ADD COLUMN batch_id TEXT")
        conn.execute("ALTER TABLE jobs ADD COLUMN custom_id TEXT")
    conn.execute("DROP INDEX IF EXISTS jobs_queue")  # the claim order has a priority now
    conn.execute("CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (status, model, priority, seq)")
    conn.execute("CREATE INDEX IF NOT EXISTS jobs_batch ON jobs (batch_id, seq) "
                 "WHERE batch_id IS NOT NULL")


def _record(conn: sqlite3.Connection, row: sqlite3.Row) -> JobRecord:
    status = Status(row["status"])
    position = None
    if status is Status.QUEUED:
        position = conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE status = 'QUEUED' AND model = ? "
            "AND (priority < ? OR (priority = ? AND seq < ?))",
            (row["model"], row["priority"], row["priority"], row["seq"]),
        ).fetchone()[0] + 1
    return JobRecord(
        id=row["id"],
        account_id=row["account_id"],
        model=row["model"],
        requested_model=row["requested_model"],
        status=status,
        request=json.loads(row["request"]),
        created_at=row["created_at"],
        attempts=row["attempts"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        expires_at=row["expires_at"],
        result=Message.from_dict(json.loads(row["result"])) if row["result"] else None,
        metrics=Metrics.from_dict(json.loads(row["metrics"])) if row["metrics"] else None,
        error=row["error"],
        error_type=row["error_type"],
        queue_position=position,
        input_tokens=row["input_tokens"],
        handbacks=row["handbacks"],
    )


def _fetch(conn: sqlite3.Connection, job_id: str, now: float,
           expired: bool = False) -> JobRecord | None:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    if not expired and row["expires_at"] is not None and row["expires_at"] <= now:
        return None
    return _record(conn, row)


class SqliteJobStore:
    def __init__(self, db: SqliteDB, *, lease_seconds: float = 30.0, max_attempts: int = 3,
                 result_ttl: float = 3600.0, idempotency_ttl: float = 86400.0,
                 keep_expired: float = KEEP_EXPIRED) -> None:
        self._db = db
        self._keep_expired = keep_expired
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._result_ttl = result_ttl
        self._idempotency_ttl = idempotency_ttl
        self._notify = Notifier()
        db.script(SCHEMA)
        db.write_now(_migrate)

    # -- submitting and reading ------------------------------------------------------------

    async def submit(self, job: NewJob, before_insert: BeforeInsert | None = None,
                     ) -> tuple[JobRecord, bool]:
        """``before_insert(conn, now)`` runs in the same transaction just before the job is
        inserted (admission: the request's credits and history row)."""
        record, created = await self._db.write(self._submit, job, time.time(), before_insert)
        if created and not job.blocked:
            self._notify.work_available()
        return record, created

    def _submit(self, conn: sqlite3.Connection, job: NewJob, now: float,
                before_insert: BeforeInsert | None = None) -> tuple[JobRecord, bool]:
        if job.idempotency_key is not None:
            row = self._idempotent(conn, job.account_id, job.idempotency_key, now)
            if row is not None:
                job_id, body_hash = row
                if body_hash != job.body_hash:
                    raise IdempotencyConflict(job_id)
                earlier = _fetch(conn, job_id, now)
                if earlier is None:
                    raise IdempotentReplay(job_id)
                return earlier, False
        if not job.blocked and job.max_queue is not None:
            depth = self._queued(conn, job.model, interactive=True)
            if depth >= job.max_queue:
                raise QueueFull(depth)
        if before_insert is not None:
            before_insert(conn, now)
        if job.idempotency_key is not None:
            conn.execute(
                "INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?, ?, ?)",
                (job.account_id, job.idempotency_key, job.body_hash, job.id, now),
            )
        conn.execute(_INSERT, self._row(job, now))
        record = _fetch(conn, job.id, now)
        assert record is not None
        return record, True

    async def submit_many(self, jobs: Sequence[NewJob],
                          before_insert: BeforeInsert | None = None) -> None:
        await self._db.write(self._submit_many, jobs, time.time(), before_insert)
        if any(not job.blocked for job in jobs):
            self._notify.work_available()

    def _submit_many(self, conn: sqlite3.Connection, jobs: Sequence[NewJob], now: float,
                     before_insert: BeforeInsert | None) -> None:
        if before_insert is not None:
            before_insert(conn, now)
        conn.executemany(_INSERT, (self._row(job, now) for job in jobs))

    def _row(self, job: NewJob, now: float) -> tuple[Any, ...]:
        """The values of :data:`_INSERT` for ``job``: QUEUED, or FAILED at once if it is
        blocked (kept like any ended job)."""
        if job.blocked:
            ended: tuple[Any, ...] = (Status.FAILED.value, job.blocked, job.blocked_type, now,
                                      now + (job.retain or self._result_ttl))
        else:
            ended = (Status.QUEUED.value, None, None, None, None)
        return (job.id, job.account_id, job.model, job.requested_model,
                json.dumps(job.request, separators=(",", ":")), job.input_tokens, now,
                *ended, int(job.priority), job.retain, job.batch_id, job.custom_id)

    def _idempotent(self, conn: sqlite3.Connection, account_id: str, key: str,
                    now: float) -> tuple[str, str] | None:
        row = conn.execute(
            "SELECT job_id, body_hash FROM idempotency_keys "
            "WHERE account_id = ? AND key = ? AND created_at > ?",
            (account_id, key, now - self._idempotency_ttl),
        ).fetchone()
        return None if row is None else (row["job_id"], row["body_hash"])

    async def idempotent(self, account_id: str, key: str) -> tuple[str, str] | None:
        return await self._db.read(self._idempotent, account_id, key, time.time())

    @staticmethod
    def _queued(conn: sqlite3.Connection, model: str, interactive: bool = False) -> int:
        """Jobs of ``model`` waiting (``interactive``: only those ahead of a batch's)."""
        only = f" AND priority = {int(Priority.INTERACTIVE)}" if interactive else ""
        return conn.execute(
            f"SELECT COUNT(*) FROM jobs WHERE status = 'QUEUED' AND model = ?{only}", (model,),
        ).fetchone()[0]

    async def queued(self, model: str) -> int:
        return await self._db.read(self._queued, model)

    async def waiting(self, models: Collection[str]) -> set[str]:
        def read(conn: sqlite3.Connection) -> set[str]:
            return {model for model in models if conn.execute(
                "SELECT 1 FROM jobs WHERE status = 'QUEUED' AND model = ? LIMIT 1",
                (model,)).fetchone()}

        return await self._db.read(read) if models else set()

    async def queue_stats(self) -> dict[str, tuple[int, float]]:
        def read(conn: sqlite3.Connection) -> dict[str, tuple[int, float]]:
            rows = conn.execute(
                "SELECT model, COUNT(*), MIN(created_at) FROM jobs WHERE status = 'QUEUED' "
                "GROUP BY model").fetchall()
            now = time.time()
            return {model: (n, max(now - oldest, 0.0)) for model, n, oldest in rows}

        return await self._db.read(read)

    async def get(self, job_id: str, *, expired: bool = False) -> JobRecord | None:
        return await self._db.read(_fetch, job_id, time.time(), expired)

    # -- the worker's side -----------------------------------------------------------------

    async def claim(self, models: Collection[str], worker_id: str) -> Claim | None:
        if not models:
            return None
        claim = await self._db.write(self._claim, tuple(models), worker_id, time.time())
        if claim is not None:
            self._notify.job_changed(claim.job.id)
        return claim

    def _claim(self, conn: sqlite3.Connection, models: tuple[str, ...], worker_id: str,
               now: float) -> Claim | None:
        marks = ",".join("?" * len(models))
        row = conn.execute(
            f"SELECT id FROM jobs WHERE status = 'QUEUED' AND model IN ({marks}) "
            "ORDER BY priority, seq LIMIT 1",
            models,
        ).fetchone()
        if row is None:
            return None
        token = uuid.uuid4().hex
        conn.execute(
            "UPDATE jobs SET status = 'PROCESSING', started_at = ?, attempts = attempts + 1, "
            "lease_token = ?, lease_owner = ?, lease_expires_at = ? WHERE id = ?",
            (now, token, worker_id, now + self._lease, row["id"]),
        )
        record = _fetch(conn, row["id"], now)
        assert record is not None
        return Claim(job=record, token=token, owner=worker_id)

    async def heartbeat(self, claim: Claim) -> bool:
        return await self._db.write(self._heartbeat, claim, time.time())

    def _heartbeat(self, conn: sqlite3.Connection, claim: Claim, now: float) -> bool:
        cur = conn.execute(
            "UPDATE jobs SET lease_expires_at = ? "
            "WHERE id = ? AND status = 'PROCESSING' AND lease_token = ?",
            (now + self._lease, claim.job.id, claim.token),
        )
        return cur.rowcount == 1

    async def complete(self, claim: Claim, result: Message,
                       metrics: Metrics) -> JobRecord | None:
        return await self._end(claim, Status.COMPLETED, result=json.dumps(result.to_dict()),
                               metrics=json.dumps(metrics.to_dict()))

    async def fail(self, claim: Claim, error: str, error_type: str) -> JobRecord | None:
        return await self._end(claim, Status.FAILED, error=error, error_type=error_type)

    async def _end(self, claim: Claim, status: Status, **fields: str) -> JobRecord | None:
        ended = await self._db.write(self._end_txn, claim, status, fields, time.time())
        if ended is not None:
            self._notify.job_changed(claim.job.id, ended=True)
        return ended

    def _end_txn(self, conn: sqlite3.Connection, claim: Claim, status: Status,
                 fields: dict[str, str], now: float) -> JobRecord | None:
        cols = "".join(f", {name} = ?" for name in fields)
        cur = conn.execute(
            f"UPDATE jobs SET status = ?, completed_at = ?, expires_at = {_EXPIRES}, "
            f"lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL{cols} "
            "WHERE id = ? AND status = 'PROCESSING' AND lease_token = ?",
            (status.value, now, now, self._result_ttl, *fields.values(), claim.job.id,
             claim.token),
        )
        return _fetch(conn, claim.job.id, now) if cur.rowcount == 1 else None

    async def record_usage(self, claim: Claim, metrics: Metrics) -> bool:
        return await self._db.write(self._record_usage, claim, json.dumps(metrics.to_dict()))

    def _record_usage(self, conn: sqlite3.Connection, claim: Claim, metrics: str) -> bool:
        cur = conn.execute(
            "UPDATE jobs SET metrics = ?, lease_token = NULL WHERE id = ? AND status = 'FAILED' "
            "AND error_type = ? AND lease_token = ? AND metrics IS NULL",
            (metrics, claim.job.id, ErrorType.CANCELLED.value, claim.token))
        return cur.rowcount == 1

    async def fail_unserved(self, models: Collection[str], error: str) -> list[str]:
        ids = await self._db.write(self._fail_unserved, tuple(models), error, time.time())
        self._notify.job_changed(*ids, ended=True)
        return ids

    def _fail_unserved(self, conn: sqlite3.Connection, models: tuple[str, ...], error: str,
                       now: float) -> list[str]:
        marks = ",".join("?" * len(models))
        rows = conn.execute(
            f"SELECT id FROM jobs WHERE status IN ('QUEUED', 'PROCESSING') "
            f"AND model NOT IN ({marks})", models).fetchall()
        ids = [row["id"] for row in rows]
        conn.executemany(
            "UPDATE jobs SET status = 'FAILED', error = ?, error_type = ?, completed_at = ?, "
            f"expires_at = {_EXPIRES}, lease_token = NULL, lease_owner = NULL, "
            "lease_expires_at = NULL WHERE id = ?",
            [(error, ErrorType.ENGINE.value, now, now, self._result_ttl, job_id)
             for job_id in ids])
        return ids

    async def release(self, claim: Claim, busy: bool = False) -> bool:
        done = await self._db.write(self._release, claim, busy)
        if done:
            self._notify.job_changed(claim.job.id)
            self._notify.work_available()
        return done

    def _release(self, conn: sqlite3.Connection, claim: Claim, busy: bool) -> bool:
        cur = conn.execute(
            "UPDATE jobs SET status = 'QUEUED', attempts = MAX(attempts - 1, 0), "
            "handbacks = handbacks + ?, started_at = NULL, lease_token = NULL, "
            "lease_owner = NULL, lease_expires_at = NULL "
            "WHERE id = ? AND status = 'PROCESSING' AND lease_token = ?",
            (int(busy), claim.job.id, claim.token),
        )
        return cur.rowcount == 1

    # -- the client's side -----------------------------------------------------------------

    async def cancel(self, job_id: str) -> tuple[JobRecord | None, bool]:
        record, changed = await self._db.write(self._cancel, job_id, time.time())
        if changed:
            self._notify.job_changed(job_id, ended=True)
        return record, changed

    def _cancel(self, conn: sqlite3.Connection, job_id: str,
                now: float) -> tuple[JobRecord | None, bool]:
        cur = conn.execute(
            "UPDATE jobs SET status = 'FAILED', error = 'cancelled', error_type = ?, "
            f"completed_at = ?, expires_at = {_EXPIRES}, lease_owner = NULL, "
            "lease_expires_at = NULL WHERE id = ? AND status IN ('QUEUED', 'PROCESSING') "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (ErrorType.CANCELLED.value, now, now, self._result_ttl, job_id, now),
        )
        return _fetch(conn, job_id, now), cur.rowcount == 1

    async def end_queued(self, job_ids: Collection[str], error: str,
                         error_type: str) -> list[JobRecord]:
        ended = await self._db.write(self._end_queued, tuple(job_ids), error, error_type,
                                     time.time())
        self._notify.job_changed(*(record.id for record in ended), ended=True)
        return ended

    def _end_queued(self, conn: sqlite3.Connection, job_ids: tuple[str, ...], error: str,
                    error_type: str, now: float) -> list[JobRecord]:
        ended = []
        for job_id in job_ids:
            cur = conn.execute(
                "UPDATE jobs SET status = 'FAILED', error = ?, error_type = ?, "
                f"completed_at = ?, expires_at = {_EXPIRES} "
                "WHERE id = ? AND status = 'QUEUED'",
                (error, error_type, now, now, self._result_ttl, job_id))
            if cur.rowcount == 1:
                record = _fetch(conn, job_id, now)
                assert record is not None
                ended.append(record)
        return ended

    async def wait_for_change(self, job_id: str, status: Status,
                              timeout: float) -> JobRecord | None:
        return await self._notify.wait(job_id, lambda: self.get(job_id),
                                       lambda record: record.status is not status, timeout)

    async def wait_until_ended(self, job_id: str, timeout: float) -> JobRecord | None:
        return await self._notify.wait(job_id, lambda: self.get(job_id),
                                       lambda record: record.status.is_terminal(), timeout,
                                       ended_only=True)

    async def report_health(self, worker_id: str, health: dict[str, dict[str, Any]]) -> None:
        return None  # one process: the API asks its own engines

    async def model_health(self) -> dict[str, list[dict[str, Any]]]:
        return {}

    async def wait_for_work(self, timeout: float) -> None:
        await self._notify.wait_for_work(timeout)

    # -- housekeeping ----------------------------------------------------------------------

    async def sweep(self) -> SweepReport:
        report = await self._db.write(self._sweep, time.time())
        self._notify.job_changed(*report.requeued)
        self._notify.job_changed(*report.failed, ended=True)
        if report.requeued:
            self._notify.work_available()
        return report

    def _sweep(self, conn: sqlite3.Connection, now: float) -> SweepReport:
        lapsed = conn.execute(
            "SELECT id, attempts FROM jobs WHERE status = 'PROCESSING' AND lease_expires_at < ?",
            (now,),
        ).fetchall()
        requeued, failed = [], []
        for row in lapsed:
            if row["attempts"] >= self._max_attempts:
                conn.execute(
                    "UPDATE jobs SET status = 'FAILED', error = ?, error_type = ?, "
                    f"completed_at = ?, expires_at = {_EXPIRES}, lease_token = NULL, "
                    "lease_owner = NULL, lease_expires_at = NULL WHERE id = ?",
                    (f"the worker running this request stopped responding "
                     f"{row['attempts']} times; giving up",
                     ErrorType.WORKER_LOST.value, now, now, self._result_ttl, row["id"]),
                )
                failed.append(row["id"])
            else:
                conn.execute(
                    "UPDATE jobs SET status = 'QUEUED', started_at = NULL, lease_token = NULL, "
                    "lease_owner = NULL, lease_expires_at = NULL WHERE id = ?",
                    (row["id"],),
                )
                requeued.append(row["id"])
        expired = conn.execute("DELETE FROM jobs WHERE expires_at <= ?",
                               (now - self._keep_expired,)).rowcount
        conn.execute("DELETE FROM idempotency_keys WHERE created_at <= ?",
                     (now - self._idempotency_ttl,))
        return SweepReport(requeued=tuple(requeued), failed=tuple(failed), expired=expired)

    async def close(self) -> None:
        return None
