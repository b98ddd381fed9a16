"""A real ``stratus serve`` (or ``api`` / ``worker``) process for the tests, on a free port and
a fresh data dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BOOTSTRAP_KEY = "sk-stratus-test-bootstrap-key-0001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, data_dir: Path, config: str | None = None,
                 extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 command: str = "serve") -> None:
        self.command = command
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = data_dir / "config.toml"
        if config is not None:
            self.config_path.write_text(config)
        self.extra_args = extra_args
        self.env = {**os.environ, "STRATUS_BOOTSTRAP_KEY": BOOTSTRAP_KEY, **(env or {})}
        self.port = free_port()
        self.key = BOOTSTRAP_KEY
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        args = [sys.executable, "-m", "stratus", self.command, "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--log-level", "warning",
                "--no-access-log", *self.extra_args]
        if self.config_path.exists():
            args += ["--config", str(self.config_path)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        if self.env.get("PYTHONFAULTHANDLER"):
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout=10)
        self.kill()
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "stratus", *args, "--data-dir", str(self.data_dir)]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60,
                              check=False)

    def new_key(self, account: str) -> str:
        done = self.cli("keys", "create", "--account", account)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": key or self.key},
                            timeout=30.0)
