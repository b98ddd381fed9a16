"""The SQLite job store's own concerns: its file survives the process, and tables made by an
earlier version are brought up to date."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stratus._sqlite import SqliteDB
from stratus.store import SqliteJobStore, Status
from tests.store.test_contract import job

pytestmark = pytest.mark.anyio


def make(db: SqliteDB, **kw) -> SqliteJobStore:
    return SqliteJobStore(db, **{"lease_seconds": 30, "max_attempts": 3, **kw})


async def test_state_survives_reopening(tmp_path: Path) -> None:
    first = SqliteDB(tmp_path / "jobs.db")
    store = make(first, lease_seconds=0.05)
    await store.submit(job(1))
    await store.claim(["m"], "w")
    await store.submit(job(2))
    first.close()
    second = SqliteDB(tmp_path / "jobs.db")
    reopened = make(second)
    assert (await reopened.get("j1")).status is Status.PROCESSING
    assert (await reopened.get("j2")).status is Status.QUEUED
    await asyncio.sleep(0.1)
    await reopened.sweep()  # the old process's lease has lapsed
    assert (await reopened.get("j1")).status is Status.QUEUED
    second.close()


def test_a_jobs_table_of_an_earlier_version_is_brought_up_to_date(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the table as an earlier version made it
        conn.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT "
                     "NULL UNIQUE, account_id TEXT NOT NULL, model TEXT NOT NULL, "
                     "requested_model TEXT NOT NULL, status TEXT NOT NULL, request TEXT NOT "
                     "NULL, created_at REAL NOT NULL, started_at REAL, completed_at REAL, "
                     "expires_at REAL, attempts INTEGER NOT NULL DEFAULT 0, lease_token TEXT, "
                     "lease_owner TEXT, lease_expires_at REAL, result TEXT, metrics TEXT, "
                     "error TEXT, error_type TEXT)")
        conn.execute("INSERT INTO jobs (id, account_id, model, requested_model, status, "
                     "request, created_at) VALUES ('old', 'a', 'm', 'm', 'QUEUED', '{}', 1)")
    database = SqliteDB(path)
    try:
        store = make(database)
        columns = database.read_now(
            lambda conn: [row["name"] for row in conn.execute("PRAGMA table_info(jobs)")])
        assert "input_tokens" in columns
        assert database.read_now(lambda conn: conn.execute(
            "SELECT input_tokens FROM jobs WHERE id = 'old'").fetchone()[0]) is None
        assert store is not None
    finally:
        database.close()
