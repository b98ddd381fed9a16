"""Where each backend is chosen from the configuration: one place, by URL.

- jobs and accounts: ``[database] url`` (``STRATUS_DATABASE_URL``), default
  ``sqlite:///<data_dir>/stratus.db``;
- rate-limit buckets: ``[redis] url`` (``STRATUS_REDIS_URL``), default in the process.

Each backend opens its own connections here, and the caller closes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stratus._sqlite import SqliteDB
from stratus.accounts import Accounts, SqliteAccounts
from stratus.config import Config
from stratus.limits import LocalRateLimiter, RateLimiter, RedisRateLimiter
from stratus.store import JobStore, SqliteJobStore

SQLITE = "sqlite:///"


@dataclass(frozen=True, slots=True)
class Database:
    """Jobs and accounts, in one database, and how to close it."""

    store: JobStore
    accounts: Accounts
    close: Callable[[], None]


def database_url(config: Config) -> str:
    return config.database.url or SQLITE + str(config.server.data_dir / "stratus.db")


def database(config: Config) -> Database:
    path = Path(database_url(config).removeprefix(SQLITE))
    server = config.server
    db = SqliteDB(path)
    store = SqliteJobStore(db, lease_seconds=server.lease_seconds,
                           max_attempts=server.max_attempts, result_ttl=server.result_ttl,
                           idempotency_ttl=server.idempotency_ttl)
    accounts = SqliteAccounts(db, history_ttl=server.history_ttl)
    return Database(store=store, accounts=accounts, close=db.close)


def rate_limiter(config: Config) -> RateLimiter:
    """Redis-backed buckets shared by every API node if ``[redis] url`` is set (or
    ``STRATUS_REDIS_URL``); otherwise buckets in this process."""
    if config.redis.url:
        return RedisRateLimiter.from_url(config.redis.url, api_nodes=config.redis.api_nodes)
    return LocalRateLimiter()
