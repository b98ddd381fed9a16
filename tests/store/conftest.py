from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from stratus._postgres import Postgres
from stratus._sqlite import SqliteDB
from stratus.store import JobStore, SqliteJobStore
from stratus.store.postgres import PostgresJobStore

DEFAULTS = {"lease_seconds": 30, "max_attempts": 3}


@pytest.fixture(params=["sqlite", "postgres"])
async def make(request: pytest.FixtureRequest,
               tmp_path: Path) -> AsyncIterator[Callable[..., JobStore]]:
    """A job store of each backend, made with the given options (lease_seconds,
    max_attempts, result_ttl, keep_expired), all on one database per test."""
    if request.param == "sqlite":
        db = SqliteDB(tmp_path / "jobs.db")
        yield lambda **options: SqliteJobStore(db, **{**DEFAULTS, **options})
        db.close()
        return
    pg = Postgres(request.getfixturevalue("postgres_url"))
    await pg.open()
    yield lambda **options: PostgresJobStore(pg, **{**DEFAULTS, **options})
    await pg.close()
