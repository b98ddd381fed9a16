from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus._sqlite import SqliteDB
from stratus.store import SqliteJobStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteJobStore]:
    db = SqliteDB(tmp_path / "w.db")
    yield SqliteJobStore(db, lease_seconds=1, max_attempts=3)
    db.close()
