"""A deployment in miniature: ``stratus api`` and ``stratus worker`` processes sharing one
private PostgreSQL and one private Redis, talking real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from tests._server import ServerProcess
from tests._services import PostgresServer, RedisServer

CONFIG = """
[server]
lease_seconds = 2
sweep_interval = 0.5
sync_timeout = 20
ping_interval = 0.5
shutdown_grace = 1

[redis]
api_nodes = 2

[[models]]
slug = "echo"
batch_slots = 16
[models.options]
delay_ms = 5

[[models]]
slug = "echo-slow"
batch_slots = 8
[models.options]
delay_ms = 100

[[models]]
slug = "echo-priced"      # 0.001 USD a token, in and out
batch_slots = 8
price_input = 1000
price_output = 1000
default_max_tokens = 10
[models.options]
delay_ms = 20
"""


class Cluster:
    def __init__(self, root: Path, postgres: PostgresServer, redis: RedisServer,
                 database_url: str) -> None:
        self.root = root
        self.postgres = postgres
        self.redis = redis
        self.database_url = database_url
        self.procs: list[ServerProcess] = []
        self.models = ""  # more [[models]] for the processes started from now on

    @property
    def env(self) -> dict[str, str]:
        return {"STRATUS_DATABASE_URL": self.database_url, "STRATUS_REDIS_URL": self.redis.url}

    def process(self, command: str, *args: str, start: bool = True,
                env: dict[str, str] | None = None) -> ServerProcess:
        proc = ServerProcess(self.root / f"{command}{len(self.procs)}", CONFIG + self.models,
                             args, {**self.env, **(env or {})}, command=command)
        self.procs.append(proc)
        return proc.start() if start else proc

    def api(self) -> ServerProcess:
        return self.process("api")

    def worker(self, *models: str, env: dict[str, str] | None = None) -> ServerProcess:
        return self.process("worker", *(("--models", ",".join(models)) if models else ()),
                            env=env)

    def sql(self, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()

    def client(self, node: ServerProcess, key: str | None = None,
               timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=node.url, timeout=timeout,
                            headers={"x-api-key": key or node.key})

    def new_key(self, account: str, *args: str) -> str:
        cli = self.procs[0]
        done = cli.cli("keys", "create", "--account", account, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()


@pytest.fixture
def cluster(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[Cluster]:
    """PostgreSQL (a fresh schema of the run's server) and a Redis of this test's own (it
    may be stopped); no Stratus process until the test starts them."""
    redis = RedisServer(tmp_path / "redis").start()
    url = postgres_server.url(schema=postgres_server.new_schema())
    made = Cluster(tmp_path, postgres_server, redis, url)
    yield made
    made.close()
    redis.stop()
