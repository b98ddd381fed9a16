from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stratus._sqlite import SqliteDB
from stratus.store import JobStore, SqliteJobStore


@pytest.fixture(params=["sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., JobStore]]:
    """A job store of each backend, made with the given options (lease_seconds,
    max_attempts, result_ttl, keep_expired), all on one database per test."""
    db = SqliteDB(tmp_path / "jobs.db")

    def made(**options: Any) -> JobStore:
        return SqliteJobStore(db, **{"lease_seconds": 30, "max_attempts": 3, **options})

    yield made
    db.close()
