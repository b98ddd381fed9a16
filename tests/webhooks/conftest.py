from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus._sqlite import SqliteDB
from stratus.accounts import SqliteAccounts
from tests.webhooks._queue import Queue


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteDB]:
    db = SqliteDB(tmp_path / "a.db")
    yield db
    db.close()


@pytest.fixture
def accounts(db: SqliteDB) -> SqliteAccounts:
    return SqliteAccounts(db)


@pytest.fixture
def queue(accounts: SqliteAccounts) -> Queue:
    return Queue(accounts)
