from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stratus._postgres import Postgres
from stratus._sqlite import SqliteDB
from stratus.accounts import Accounts, PostgresAccounts, SqliteAccounts

BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``accounts`` runs on every backend, except in a module named after one backend
    (``test_sqlite.py``, ``test_postgres.py``): that module tests its backend only."""
    if "accounts" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rpartition(".")[2]
    backends = [name for name in BACKENDS if module == f"test_{name}"] or list(BACKENDS)
    metafunc.parametrize("accounts", backends, indirect=True)


@pytest.fixture
async def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Accounts]:
    """Accounts of one backend on a fresh database (SQLite: ``a.db`` under ``tmp_path``;
    PostgreSQL: a fresh schema of the tests' private server)."""
    if request.param == "sqlite":
        db = SqliteDB(tmp_path / "a.db")
        yield SqliteAccounts(db)
        db.close()
        return
    pg = Postgres(request.getfixturevalue("postgres_url"))
    await pg.open()
    yield PostgresAccounts(pg)
    await pg.close()
