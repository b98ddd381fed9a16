"""Reading a reply as server-sent events: text deltas as they come, then the whole reply.

``Stream`` and ``AsyncStream`` are iterables of text deltas; once iteration ends, ``.reply``
holds the finished :class:`Reply` (``until_done()`` does both). A stream that ends with an
``error`` event raises ``InferenceFailed``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from stratus.client._exceptions import InferenceFailed, StratusError
from stratus.client._types import Reply


class _Accumulator:
    """Anthropic's stream events folded into a message (no I/O)."""

    def __init__(self) -> None:
        self.request_id: str | None = None
        self.message: dict[str, Any] = {}
        self.pieces: list[str] = []
        self.done = False
        self._event = "message"

    def line(self, line: str) -> str | None:
        """Feed one line of the stream; returns a text delta when it carries one."""
        if line.startswith("event:"):
            self._event = line[6:].strip()
            return None
        if not line.startswith("data:"):
            return None
        data = json.loads(line[5:])
        name, self._event = self._event, "message"
        if name == "message_start":
            self.message = dict(data["message"])
        elif name == "content_block_delta" and data["delta"].get("type") == "text_delta":
            self.pieces.append(data["delta"]["text"])
            return data["delta"]["text"]
        elif name == "message_delta":
            self.message.update(data.get("delta", {}))
            usage = dict(self.message.get("usage") or {})
            usage.update(data.get("usage", {}))
            self.message["usage"] = usage
        elif name == "message_stop":
            self.done = True
        elif name == "error":
            error = data.get("error", {})
            raise InferenceFailed(self.request_id or "", error.get("message"),
                                  error.get("type"), data)
        return None

    def reply(self) -> Reply:
        if not self.done:
            raise StratusError("the stream ended before message_stop")
        message = {**self.message, "content": [{"type": "text", "text": "".join(self.pieces)}]}
        return Reply.from_message(message, request_id=self.request_id)


class Stream:
    def __init__(self, lines: Iterator[str], request_id: str | None, close: Any) -> None:
        self._lines = lines
        self._close = close
        self._acc = _Accumulator()
        self._acc.request_id = request_id
        self.request_id = request_id

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self._lines:
                text = self._acc.line(line)
                if text:
                    yield text
                if self._acc.done:
                    break
        finally:
            self.close()

    @property
    def reply(self) -> Reply:
        return self._acc.reply()

    def until_done(self) -> Reply:
        for _ in self:
            pass
        return self.reply

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream:
    def __init__(self, lines: AsyncIterator[str], request_id: str | None, close: Any) -> None:
        self._lines = lines
        self._close = close
        self._acc = _Accumulator()
        self._acc.request_id = request_id
        self.request_id = request_id

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async for line in self._lines:
                text = self._acc.line(line)
                if text:
                    yield text
                if self._acc.done:
                    break
        finally:
            await self.close()

    @property
    def reply(self) -> Reply:
        return self._acc.reply()

    async def until_done(self) -> Reply:
        async for _ in self:
            pass
        return self.reply

    async def close(self) -> None:
        await self._close()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
