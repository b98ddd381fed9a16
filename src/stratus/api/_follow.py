"""Following a job as it runs: its status changes, its text as the engine makes it, its end.

The surface-neutral half of every stream route; ``_sse`` turns what it yields into
Anthropic's events, ``openai`` into OpenAI's chunks. Text the follower joined too late for
is taken from the stored result, so a stream opened at any time carries the whole reply.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from stratus.api._outcome import result_text
from stratus.errors import NotFound
from stratus.runtime import Runtime
from stratus.store import JobRecord, Status


@dataclass(frozen=True, slots=True)
class StatusChanged:
    record: JobRecord


@dataclass(frozen=True, slots=True)
class Ping:
    """Nothing happened for ``ping_interval`` seconds."""


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Ended:
    """The job ended; ``record`` is COMPLETED (with its result) or FAILED."""

    record: JobRecord


Item = StatusChanged | Ping | Text | Ended


async def follow(runtime: Runtime, record: JobRecord, *,
                 cancel_on_exit: bool) -> AsyncIterator[Item]:
    """Ends with :class:`Ended`, or raises ``NotFound`` if the job vanishes. With
    ``cancel_on_exit``, a follower that stops early (the client went away) cancels the job."""
    job_id = record.id
    every = runtime.config.server.ping_interval
    ended = False
    try:
        sent: list[str] = []
        status = record.status
        while not status.is_terminal():
            for piece in runtime.bus.since(job_id, len(sent)):
                sent.append(piece)
                yield Text(piece)
            if status is Status.QUEUED:
                latest = await runtime.store.wait_for_change(job_id, status, every)
            else:
                await runtime.bus.wait(job_id, len(sent), every)
                if runtime.bus.since(job_id, len(sent)):
                    continue
                # the stream closed (the job ended or left this process), or was quiet a while
                quiet = every if runtime.bus.closed(job_id) else 0.0
                latest = await runtime.store.wait_for_change(job_id, status, quiet)
            if latest is None:
                raise NotFound(f"request {job_id} is gone: it expired or was removed")
            if latest.status is status:
                yield Ping()
            else:
                status = latest.status
                yield StatusChanged(latest)
        for piece in runtime.bus.since(job_id, len(sent)):
            sent.append(piece)
            yield Text(piece)
        final = await runtime.store.get(job_id)
        if final is None:
            raise NotFound(f"request {job_id} is gone: it expired or was removed")
        if final.status is Status.COMPLETED and final.result is not None:
            text = result_text(final.result)
            streamed = "".join(sent)
            if text.startswith(streamed) and len(text) > len(streamed):
                yield Text(text[len(streamed):])
        ended = True
        yield Ended(final)
    finally:
        if cancel_on_exit and not ended:
            with contextlib.suppress(Exception):
                await asyncio.shield(runtime.cancel_job(job_id))
