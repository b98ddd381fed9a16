from __future__ import annotations

from pathlib import Path

import pytest

from stratus._sqlite import SqliteDB
from stratus.accounts import SqliteAccounts


@pytest.fixture(params=["sqlite"])
def accounts(request: pytest.FixtureRequest, tmp_path: Path):
    """Accounts of each backend, on a fresh database (SQLite: ``a.db`` under ``tmp_path``)."""
    db = SqliteDB(tmp_path / "a.db")
    yield SqliteAccounts(db)
    db.close()
