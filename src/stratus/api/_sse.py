"""A job's reply as Anthropic's server-sent events.

``message_start``, ``content_block_start``, a ``content_block_delta`` per piece of text as the
engine makes it, ``content_block_stop``, ``message_delta`` (stop reason, usage),
``message_stop``; ``ping`` every ``ping_interval`` seconds (10 by default) while nothing else
is sent (a queued job); an ``error`` event if the job fails after the 200. Every stream ends with
``message_stop`` or ``error``. A client that goes away cancels its job (unless it is only
watching a queued job). Text the stream joined too late for is sent from the stored result,
so a stream opened at any time carries the whole reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from stratus.api._errors import anthropic_error_body
from stratus.api.segmind.serving import failure_error, status_body
from stratus.errors import NotFound
from stratus.runtime import Runtime
from stratus.store import JobRecord, Status
from stratus.worker import message_id

log = logging.getLogger("stratus.api")


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _delta(text: str) -> bytes:
    return event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": text}})


async def message_events(runtime: Runtime, record: JobRecord, model: str,
                         input_tokens: int, *, watch: bool = False) -> AsyncIterator[bytes]:
    """``watch``: an observer of a queued job (``GET /v2/requests/{id}/stream``): each status
    change is sent as a ``status`` event, and going away leaves the job running."""
    job_id = record.id
    ping_every = runtime.config.server.ping_interval
    ended = watch
    try:
        if watch:
            yield event("status", status_body(record))
        yield event("message_start", {"type": "message_start", "message": {
            "id": message_id(job_id), "type": "message", "role": "assistant", "content": [],
            "model": model, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})
        yield event("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}})
        sent: list[str] = []
        status = record.status
        while True:
            for piece in runtime.bus.since(job_id, len(sent)):
                sent.append(piece)
                yield _delta(piece)
            if status.is_terminal():
                break
            if status is Status.QUEUED:
                changed = await runtime.store.wait_for_change(job_id, status, ping_every)
                if changed is None:
                    raise NotFound(f"request {job_id} is gone")
                if changed.status is status:
                    yield event("ping", {"type": "ping"})
                elif watch:
                    yield event("status", status_body(changed))
                status = changed.status
                continue
            before = len(sent)
            await runtime.bus.wait(job_id, ping_every)
            if not runtime.bus.since(job_id, before):  # closed, or nothing for a while
                latest = await runtime.store.get(job_id)
                if latest is None:
                    raise NotFound(f"request {job_id} is gone")
                if latest.status is status:
                    yield event("ping", {"type": "ping"})
                elif watch:
                    yield event("status", status_body(latest))
                status = latest.status
        final = await runtime.store.get(job_id)
        if final is None:
            raise NotFound(f"request {job_id} is gone")
        if watch and final.status is not status:
            yield event("status", status_body(final))
        if final.status is Status.FAILED:
            ended = True
            yield event("error", anthropic_error_body(failure_error(final)))
            return
        assert final.result is not None
        text = "".join(b.get("text", "") for b in final.result["content"])
        streamed = "".join(sent)
        if text.startswith(streamed) and len(text) > len(streamed):
            yield _delta(text[len(streamed):])  # what this stream missed, if anything
        yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": final.result["stop_reason"],
                      "stop_sequence": final.result["stop_sequence"]},
            "usage": {"output_tokens": final.result["usage"]["output_tokens"]}})
        yield event("message_stop", {"type": "message_stop"})
        ended = True
    except NotFound as exc:
        ended = True
        yield event("error", anthropic_error_body(exc))
    finally:
        if not ended:  # the client went away mid-stream: free the engine for others
            with contextlib.suppress(Exception):
                await asyncio.shield(runtime.store.cancel(job_id))
