"""Where each backend is chosen from the configuration: one place, by URL.

- jobs and accounts: ``[database] url`` (``STRATUS_DATABASE_URL``): ``sqlite:///PATH``
  (default ``sqlite:///<data_dir>/stratus.db``) or ``postgresql://…``;
- wake-up hints, live token streams, rate-limit buckets: ``[redis] url``
  (``STRATUS_REDIS_URL``), default in the process.

Jobs and accounts always share one database, so that admission (credit reservation, history
row, job) and, on PostgreSQL, a job's end and its settlement are each one transaction. Each
backend opens its own connections (:meth:`Database.open`) and closes them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stratus._sqlite import SqliteDB
from stratus.accounts import Accounts, Opening, SqliteAccounts
from stratus.accounts.sqlite import _requests as sqlite_requests
from stratus.batches import BatchStore, NewBatch, SqliteBatches
from stratus.batches import sqlite as sqlite_batches
from stratus.config import Config
from stratus.limits import LocalRateLimiter, RateLimiter, RedisRateLimiter
from stratus.store import JobRecord, JobStore, NewJob, SqliteJobStore
from stratus.store._notify import Notifier
from stratus.streams import LocalTokenStream, RedisTokenStream, TokenStream
from stratus.views import status_body

SQLITE = "sqlite:///"
Admit = Callable[[Opening, NewJob], Awaitable[tuple[JobRecord, bool]]]
# Records a batch, reserves its requests' credits (the note says how) and queues their jobs,
# in one transaction.
AdmitBatch = Callable[[NewBatch, Sequence[Opening], Sequence[NewJob], str], Awaitable[None]]


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Database:
    """Jobs and accounts, in one database.

    ``admit`` reserves a request's credits, records it and queues its job in one transaction
    (see :meth:`stratus.store.JobStore.submit` for what it raises); ``admit_batch`` does the
    same for a Message Batch's requests, with the batch. ``shared``: other
    processes use the database too (PostgreSQL). ``settles_on_end``: the store marks a job's
    request started in the transaction that claims the job, and settles it in the one that
    ends the job."""

    store: JobStore
    accounts: Accounts
    batches: BatchStore
    admit: Admit
    admit_batch: AdmitBatch
    open: Callable[[], Awaitable[None]] = _nothing
    close: Callable[[], Awaitable[None]] = _nothing
    on_webhook: Callable[[Callable[[], None]], None] = lambda listener: None
    shared: bool = False
    settles_on_end: bool = False


def database_url(config: Config) -> str:
    return config.database.url or SQLITE + str(config.server.data_dir / "stratus.db")


def webhook_payload(record: JobRecord) -> str:
    """What a request's webhook sends: its status body."""
    return json.dumps(status_body(record), separators=(",", ":"))


def database(config: Config) -> Database:
    url = database_url(config)
    if url.startswith(SQLITE):
        return _sqlite(config, Path(url.removeprefix(SQLITE)))
    return _postgres(config, url)


def _sqlite(config: Config, path: Path) -> Database:
    server = config.server
    db = SqliteDB(path)
    store = SqliteJobStore(db, lease_seconds=server.lease_seconds,
                           max_attempts=server.max_attempts, result_ttl=server.result_ttl,
                           idempotency_ttl=server.idempotency_ttl)
    accounts = SqliteAccounts(db, history_ttl=server.history_ttl)

    async def admit(opening: Opening, job: NewJob) -> tuple[JobRecord, bool]:
        def open_request(conn: sqlite3.Connection, now: float) -> None:
            sqlite_requests.open_request(conn, opening, now)

        return await store.submit(job, before_insert=open_request)

    async def admit_batch(batch: NewBatch, openings: Sequence[Opening],
                          jobs: Sequence[NewJob], note: str) -> None:
        def open_batch(conn: sqlite3.Connection, now: float) -> None:
            sqlite_batches.insert(conn, batch, now)
            sqlite_requests.open_batch(conn, openings, note, now)

        await store.submit_many(jobs, before_insert=open_batch)

    async def close() -> None:
        db.close()

    return Database(store=store, accounts=accounts, batches=SqliteBatches(db), admit=admit,
                    admit_batch=admit_batch, close=close)


def _postgres(config: Config, url: str) -> Database:
    from stratus._postgres import Postgres
    from stratus.accounts.postgres import PostgresAccounts
    from stratus.accounts.postgres import _requests as pg_requests
    from stratus.batches import postgres as pg_batches
    from stratus.store._hints import RedisHints
    from stratus.store.postgres import PostgresJobStore

    server = config.server
    pg = Postgres(url, max_size=config.database.pool_size,
                  connect_timeout=config.database.connect_timeout)
    notifier = Notifier()
    hints = RedisHints(config.redis.url, notifier) if config.redis.url else None

    async def settle(conn: object, record: JobRecord) -> bool:
        return await pg_requests.close_request(conn, record,  # type: ignore[arg-type]
                                               webhook_payload(record))

    async def started(conn: object, record: JobRecord) -> None:
        await pg_requests.start_request(conn, record.id,  # type: ignore[arg-type]
                                        record.started_at or record.created_at)

    store = PostgresJobStore(pg, lease_seconds=server.lease_seconds,
                             max_attempts=server.max_attempts, result_ttl=server.result_ttl,
                             idempotency_ttl=server.idempotency_ttl, hints=hints,
                             notifier=notifier, settle=settle, started=started)
    accounts = PostgresAccounts(pg, history_ttl=server.history_ttl)

    async def admit(opening: Opening, job: NewJob) -> tuple[JobRecord, bool]:
        async def open_request(conn: object) -> None:
            await pg_requests.open_request(conn, opening)  # type: ignore[arg-type]

        return await store.submit(job, before_insert=open_request)

    async def admit_batch(batch: NewBatch, openings: Sequence[Opening],
                          jobs: Sequence[NewJob], note: str) -> None:
        async def open_batch(conn: object) -> None:
            await pg_batches.insert(conn, batch)  # type: ignore[arg-type]
            await pg_requests.open_batch(conn, openings, note)  # type: ignore[arg-type]

        await store.submit_many(jobs, before_insert=open_batch)

    async def open_() -> None:
        await pg.open()
        if hints is not None:
            hints.start()

    async def close() -> None:
        if hints is not None:
            await hints.close()
        await pg.close()

    return Database(store=store, accounts=accounts, batches=pg_batches.PostgresBatches(pg),
                    admit=admit, admit_batch=admit_batch, open=open_, close=close,
                    on_webhook=store.on_webhook, shared=True, settles_on_end=True)


def rate_limiter(config: Config) -> RateLimiter:
    """Redis-backed buckets shared by every API node if ``[redis] url`` is set (or
    ``STRATUS_REDIS_URL``); otherwise buckets in this process."""
    if config.redis.url:
        return RedisRateLimiter.from_url(config.redis.url, api_nodes=config.redis.api_nodes)
    return LocalRateLimiter()


def token_stream(config: Config) -> TokenStream:
    """Live token streams in Redis, read by every API node, if ``[redis] url`` is set (or
    ``STRATUS_REDIS_URL``); otherwise in this process."""
    if config.redis.url:
        return RedisTokenStream.from_url(config.redis.url)
    return LocalTokenStream()
