"""One SQLite connection owned by one thread, driven from asyncio.

SQLite allows one writer at a time, so every statement of the process goes through a single
thread: no lock contention inside the process, and the event loop never blocks on disk.
WAL mode with ``synchronous=NORMAL`` survives a killed process (only a power cut can lose the
last transactions); ``busy_timeout`` lets other processes (the CLI) share the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SqliteDB:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stratus-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path)
        return self._conn

    def _transact(self, fn: Callable[..., T], write: bool, args: tuple[Any, ...]) -> T:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                out = fn(conn, *args)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return out

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one write transaction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transact, fn, True, args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transact, fn, False, args)

    def write_now(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking twin of :meth:`write`, for the command line and start-up."""
        return self._transact(fn, True, args)

    def read_now(self, fn: Callable[..., T], *args: Any) -> T:
        return self._transact(fn, False, args)

    def script(self, sql: str) -> None:
        """Run a schema script (its own statements, outside any transaction)."""
        with self._lock:
            self._connection().executescript(sql)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
