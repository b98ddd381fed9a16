from __future__ import annotations

from pathlib import Path

import pytest

from stratus._sqlite import SqliteDB
from stratus.accounts import SqliteAccounts


@pytest.fixture
def accounts(tmp_path: Path):
    """Accounts on a fresh SQLite file, ``a.db`` under ``tmp_path``."""
    db = SqliteDB(tmp_path / "a.db")
    yield SqliteAccounts(db)
    db.close()
