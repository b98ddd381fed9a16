"""Webhook receivers on 127.0.0.1, each answering in its own (sometimes hostile) way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Answer = Callable[["Receiver", asyncio.StreamWriter], Awaitable[None]]

MIB = 1024 * 1024
WAIT = 20.0  # seconds a test waits for something that should happen at once


class Receiver:
    """An HTTP/1.1 endpoint that reads each request, then answers with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[dict[str, str]] = []  # each request's headers, lower-case names
        self.arrived = asyncio.Condition()
        self.open = 0
        self.max_open = 0
        self.cut_short = asyncio.Event()  # the client hung up while we were still answering
        self.released = asyncio.Event()  # answers that hold wait for this
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.released.set()  # every answer ends once released
        assert self._server is not None
        self._server.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=WAIT)
        await self._server.wait_closed()

    async def wait_for_requests(self, n: int) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.requests) >= n), WAIT)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if line)
            headers = {name.lower(): value for name, value in headers.items()}
            await reader.readexactly(int(headers.get("content-length", "0")))
            async with self.arrived:
                self.requests.append(headers)
                self.arrived.notify_all()
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.cut_short.set()
        finally:
            self.open -= 1
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer until done, or until the client hangs up (its end of the stream)."""
        answering = asyncio.create_task(self.answer(self, writer))
        hangup = asyncio.create_task(reader.read())
        await asyncio.wait({answering, hangup}, return_when=asyncio.FIRST_COMPLETED)
        if not answering.done() or answering.exception() is not None:
            self.cut_short.set()  # the client hung up (or reset) before the answer's end
        for one in (answering, hangup):
            one.cancel()
        await asyncio.gather(answering, hangup, return_exceptions=True)


async def ok(receiver: Receiver, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    await writer.drain()


async def hold_then_ok(receiver: Receiver, writer: asyncio.StreamWriter) -> None:
    await receiver.released.wait()
    await ok(receiver, writer)


async def huge_body(receiver: Receiver, writer: asyncio.StreamWriter) -> None:
    """200, announcing 1 GiB: sends up to 64 MiB of it, then holds the connection open."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n")
    chunk = b"x" * MIB
    for _ in range(64):
        writer.write(chunk)
        await writer.drain()
    await receiver.released.wait()


async def drip(receiver: Receiver, writer: asyncio.StreamWriter) -> None:
    """A status line and headers that never end, one byte every 0.2 s."""
    for byte in b"HTTP/1.1 200 OK\r\nx-drip: ":
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)
    while not receiver.released.is_set():
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(0.2)
