"""An ASGI application served by uvicorn in a thread of its own, on a 127.0.0.1 port that
stays the same across a stop and a start (for servers the tests stand up in-process)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class ThreadedServer:
    def __init__(self, app: Any, name: str, *, lifespan: bool = False) -> None:
        self._app = app
        self._name = name
        self._lifespan = "on" if lifespan else "off"
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError(f"{self._name} is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout: float = 20.0) -> None:
        """Serve; returns once the server accepts connections."""
        if self._thread is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(
            self._app, interface="asgi3", loop="asyncio", lifespan=self._lifespan,
            log_config=None, log_level="warning", access_log=False, server_header=False,
            date_header=True, timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name=f"{self._name}-{self.port}", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(5)
                self._server = self._thread = None
                sock.close()
                raise RuntimeError(f"{self._name} did not start")
            time.sleep(0.01)

    def stop(self, timeout: float = 15.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        self._server = self._thread = None
