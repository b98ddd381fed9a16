"""PostgreSQL for the scale-out backends: one async connection pool per process, shared by
the job store and the accounts (one database, so admission and settlement are each one
transaction), and the schema brought up to date at start.

Migrations are the numbered SQL files in ``stratus/migrations/`` (``0001_jobs.sql``, …),
applied in order, each in its own transaction, under a session advisory lock: any number of
processes may start at once, and exactly one applies what is missing.

When the database cannot be reached, every operation raises
:class:`~stratus.errors.Unavailable` (503 with ``Retry-After``) within ``connect_timeout``:
a node never hangs on a database that is down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from stratus.errors import Unavailable

log = logging.getLogger("stratus.postgres")

Connection = psycopg.AsyncConnection[dict]
MIGRATION_LOCK = 0x5374_7261_7475_7301  # pg_advisory_lock key of the migrations
SWEEP_LOCK = 0x5374_7261_7475_7302  # pg_try_advisory_xact_lock key of the sweep
_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """``(number, name, sql)`` of every migration, in order."""
    found = []
    for entry in resources.files("stratus.migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


class DatabaseUnavailable(Unavailable):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"the database is unavailable ({type(cause).__name__}); nothing was "
                         "lost: retry shortly", headers={"Retry-After": "2"})


class Postgres:
    def __init__(self, url: str, *, max_size: int = 10, connect_timeout: float = 3.0) -> None:
        self.url = url
        self._timeout = connect_timeout
        # Autocommit: a lone statement costs one round trip, not BEGIN + it + COMMIT. A
        # connection broken by a database restart fails its request once (503) and is dropped.
        self.pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False, timeout=connect_timeout,
            kwargs={"row_factory": dict_row, "connect_timeout": max(1, round(connect_timeout)),
                    "application_name": "stratus", "autocommit": True})

    async def open(self) -> None:
        """Connect and apply the missing migrations."""
        try:
            await self.pool.open(wait=True, timeout=self._timeout)
        except PoolTimeout as exc:
            await self.pool.close()
            raise DatabaseUnavailable(exc) from exc
        await self.migrate()

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection in a transaction, committed when the block ends without an error."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection in autocommit mode: for a single statement (a read, or one atomic
        update)."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailable(exc) from exc

    async def migrate(self) -> list[str]:
        """Apply every migration not yet applied; returns the names applied here."""
        applied: list[str] = []
        async with self.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS stratus_migrations (number INTEGER "
                    "PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL "
                    "DEFAULT now())")
                cur = await conn.execute("SELECT number FROM stratus_migrations")
                done = {row["number"] for row in await cur.fetchall()}
                for number, name, sql in migrations():
                    if number in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(sql.encode())
                        await conn.execute(
                            "INSERT INTO stratus_migrations (number, name) VALUES (%s, %s)",
                            (number, name))
                    applied.append(name)
                    log.info("applied migration %s", name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        return applied
