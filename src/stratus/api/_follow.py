"""Following a job as it runs: its status changes, its text as the engine makes it, its end.

The surface-neutral half of every stream route; ``_sse`` turns what it yields into
Anthropic's events, ``openai`` into OpenAI's chunks. Text the follower joined too late for,
or could not read live, is taken from the stored result, so a stream opened at any time
carries the whole reply. The text of two attempts of a job is never joined: once text was
sent, a new attempt of the job ends the stream with an error (the job goes on, and its reply
can be fetched when it ends).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from stratus.errors import NotFound
from stratus.runtime import Runtime
from stratus.store import ErrorType, JobRecord, Status
from stratus.streams import Position, State


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
    """The job ended; ``record`` is COMPLETED (with its result) or FAILED. When the stream
    cannot carry the reply (the job restarted after text was sent), ``record`` is the job
    without a result, with the error to report."""

    record: JobRecord


Item = StatusChanged | Ping | Text | Ended
OnEnd = Callable[[JobRecord], None]


async def follow(runtime: Runtime, record: JobRecord, *, cancel_on_exit: bool,
                 on_end: OnEnd | None = None) -> AsyncIterator[Item]:
    """Ends with :class:`Ended` (``on_end`` is called with its record first), or raises
    ``NotFound`` if the job vanishes. With ``cancel_on_exit``, a follower that stops early
    (the client went away) cancels the job."""
    job_id = record.id
    every = runtime.config.server.ping_interval
    ended = False
    try:
        sent: list[str] = []
        position = Position()
        status = record.status
        while not status.is_terminal():
            if status is Status.QUEUED:
                latest = await runtime.store.wait_for_change(job_id, status, every)
            else:
                got = await runtime.bus.read(job_id, position, every)
                if got.state is State.RESTARTED:
                    ended = True
                    yield _ended(_restarted(record), on_end)
                    return
                position = got.position
                for piece in got.texts:
                    sent.append(piece)
                    yield Text(piece)
                if got.texts:
                    continue
                # quiet a while (a ping), or nothing more to read live: the job says what next
                quiet = 0.0 if got.state is State.LIVE else every
                latest = await runtime.store.wait_for_change(job_id, status, quiet)
            if latest is None:
                raise NotFound(f"request {job_id} is gone: it expired or was removed")
            record = latest
            if latest.status is status:
                yield Ping()
            else:
                status = latest.status
                yield StatusChanged(latest)
        final = await runtime.store.get(job_id)
        if final is None:
            raise NotFound(f"request {job_id} is gone: it expired or was removed")
        if final.status is Status.COMPLETED and final.result is not None:
            # the rest of the reply is the stored one's: the stream may lag behind it
            text = final.result.text
            streamed = "".join(sent)
            if not text.startswith(streamed):  # another attempt made it
                final = _restarted(final)
            elif len(text) > len(streamed):
                yield Text(text[len(streamed):])
        else:  # what the failed attempt made before it stopped, if the stream still has it
            got = await runtime.bus.read(job_id, position, 0.0)
            for piece in got.texts:
                yield Text(piece)
        ended = True
        yield _ended(final, on_end)
    finally:
        if cancel_on_exit and not ended:
            with contextlib.suppress(Exception):
                await asyncio.shield(runtime.cancel_job(job_id))


def _ended(record: JobRecord, on_end: OnEnd | None) -> Ended:
    if on_end is not None:
        on_end(record)
    return Ended(record)


def _restarted(record: JobRecord) -> JobRecord:
    """The end of a stream whose text came from an attempt of the job that was replaced."""
    return replace(record, result=None, error_type=ErrorType.WORKER_LOST, error=(
        f"request {record.id} was restarted after part of its reply had been streamed, and "
        "a stream never joins the text of two attempts: fetch the whole reply with "
        f"GET /v2/requests/{record.id} once the request has ended"))
