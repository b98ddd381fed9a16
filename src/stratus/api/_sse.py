"""A job's reply as Anthropic's server-sent events.

``message_start``; with the first text ``content_block_start``, then a ``content_block_delta``
per piece of text as the engine makes it, ``content_block_stop``; then each tool the model
called as a ``tool_use`` block (its input in one ``input_json_delta``); ``message_delta``
(stop reason, the final usage), ``message_stop``. The blocks are those of the stored message
(a reply that only calls tools has no text block); ``ping`` every ``ping_interval`` seconds
(10 by default) while nothing else is sent (a queued job); an ``error`` event if the job
fails after the 200. Every stream ends with ``message_stop`` or ``error``. A client that
goes away cancels its job, unless it is only watching a queued job (``watch``), which also
sees each status change as ``status``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from stratus.api._errors import anthropic_error_body
from stratus.api._follow import Ended, OnEnd, Ping, StatusChanged, Text, follow
from stratus.api._outcome import failure_error
from stratus.api.segmind.serving import status_body
from stratus.errors import NotFound
from stratus.runtime import Runtime
from stratus.store import JobRecord, Status
from stratus.worker import message_id


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def message_events(runtime: Runtime, record: JobRecord, model: str,
                         input_tokens: int, *, watch: bool = False,
                         on_end: OnEnd | None = None) -> AsyncIterator[bytes]:
    if watch:
        yield event("status", status_body(record))
    yield event("message_start", {"type": "message_start", "message": {
        "id": message_id(record.id), "type": "message", "role": "assistant", "content": [],
        "model": model, "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})
    last = record.status
    text_block = False  # begun with the first text, as Anthropic does
    try:
        async for item in follow(runtime, record, cancel_on_exit=not watch, on_end=on_end):
            if isinstance(item, Text):
                if not text_block:
                    text_block = True
                    yield _text_start()
                yield event("content_block_delta", {
                    "type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": item.text}})
            elif isinstance(item, Ping):
                yield event("ping", {"type": "ping"})
            elif isinstance(item, StatusChanged | Ended) and watch \
                    and item.record.status is not last:
                last = item.record.status
                yield event("status", status_body(item.record))
            if isinstance(item, Ended):
                yield _ending(item.record, text_block)
    except NotFound as exc:
        yield event("error", anthropic_error_body(exc))


def _tool_use(index: int, block: dict[str, Any]) -> bytes:
    """A tool call as Anthropic streams it: the block, its input as JSON, the block's end."""
    return (
        event("content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {**block, "input": {}}})
        + event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
            "type": "input_json_delta",
            "partial_json": json.dumps(block["input"], separators=(",", ":"))}})
        + event("content_block_stop", {"type": "content_block_stop", "index": index}))


def _text_start() -> bytes:
    return event("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})


def _ending(final: JobRecord, text_block: bool) -> bytes:
    """The blocks still to send (the text block's end, or an empty one for a reply of
    nothing; each tool call), then the stop reason and the final usage: the same blocks as
    the stored message."""
    if final.status is Status.FAILED or final.result is None:
        return event("error", anthropic_error_body(failure_error(final)))
    result = final.result
    calls = [b for b in result.content if b.get("type") == "tool_use"]
    blocks = b""
    if text_block or not calls:
        blocks = (b"" if text_block else _text_start()) + event(
            "content_block_stop", {"type": "content_block_stop", "index": 0})
    first = 1 if text_block or not calls else 0
    return (
        blocks
        + b"".join(_tool_use(index, block) for index, block in enumerate(calls, start=first))
        + event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": result.stop_reason,
                      "stop_sequence": result.stop_sequence},
            "usage": {"input_tokens": result.input_tokens,
                      "output_tokens": result.output_tokens,
                      "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": result.cached_input_tokens}})
        + event("message_stop", {"type": "message_stop"})
    )
