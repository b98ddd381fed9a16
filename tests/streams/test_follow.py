"""A stream route's follower over each token stream: live text, the stored rest, and no
text of two attempts joined."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

import pytest

from stratus.api._follow import Ended, Item, Text, follow
from stratus.runtime import Runtime
from stratus.store import JobRecord, Message, Status
from stratus.streams import TokenStream
from tests.conftest import answer
from tests.streams.conftest import until

pytestmark = pytest.mark.anyio


class Store:
    """One job, changed by the test."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        self._changed = asyncio.Event()

    def set(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)
        self._changed.set()

    async def wait_for_change(self, job_id: str, status: Status,
                              timeout: float) -> JobRecord | None:
        deadline = time.monotonic() + timeout
        while self.record.status is status and (left := deadline - time.monotonic()) > 0:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                break
        return self.record

    async def get(self, job_id: str) -> JobRecord | None:
        return self.record


def result(text: str) -> Message:
    return answer(text)


class Follower:
    def __init__(self, stream: TokenStream, job_id: str) -> None:
        record = JobRecord(id=job_id, account_id="acct", model="m", requested_model="m",
                           status=Status.PROCESSING, request={}, created_at=time.time(),
                           attempts=1)
        self.store = Store(record)
        self.cancelled: list[str] = []

        async def cancel_job(job_id: str) -> None:
            self.cancelled.append(job_id)

        runtime = SimpleNamespace(config=SimpleNamespace(server=SimpleNamespace(
            ping_interval=0.3)), store=self.store, bus=stream, cancel_job=cancel_job)
        self.items: list[Item] = []
        self.task = asyncio.create_task(self._run(cast(Runtime, runtime), record))

    async def _run(self, runtime: Runtime, record: JobRecord) -> None:
        async for item in follow(runtime, record, cancel_on_exit=True):
            self.items.append(item)

    @property
    def text(self) -> str:
        return "".join(item.text for item in self.items if isinstance(item, Text))

    async def ended(self) -> Ended:
        await asyncio.wait_for(self.task, 10)
        last = self.items[-1]
        assert isinstance(last, Ended)
        return last


async def test_live_text_then_the_rest_from_the_stored_result(stream: TokenStream,
                                                               job_id: str) -> None:
    await stream.start(job_id, "a1")
    follower = Follower(stream, job_id)
    await stream.publish(job_id, "a1", "Hello ")
    await until(lambda: follower.text == "Hello ")
    await stream.publish(job_id, "a1", "world")
    await until(lambda: follower.text == "Hello world")
    # the end of the reply never made it to the stream
    follower.store.set(status=Status.COMPLETED, result=result("Hello world!"))
    await stream.end(job_id, "a1")
    ended = await follower.ended()
    assert follower.text == "Hello world!"
    assert ended.record.status is Status.COMPLETED and not follower.cancelled


async def test_a_restart_after_text_was_sent_ends_with_an_error(stream: TokenStream,
                                                                job_id: str) -> None:
    await stream.start(job_id, "a1")
    follower = Follower(stream, job_id)
    await stream.publish(job_id, "a1", "first ")
    await until(lambda: follower.text == "first ")
    await stream.start(job_id, "a2")  # the job was taken over by a new attempt
    await stream.publish(job_id, "a2", "second")
    ended = await follower.ended()
    assert follower.text == "first "  # nothing of the new attempt joined to it
    assert ended.record.result is None and "restarted" in (ended.record.error or "")
    assert ended.record.status is Status.PROCESSING  # the job itself goes on
    assert not follower.cancelled


async def test_a_restart_before_any_text_follows_the_new_attempt(stream: TokenStream,
                                                                 job_id: str) -> None:
    await stream.start(job_id, "a1")
    follower = Follower(stream, job_id)
    await asyncio.sleep(0.1)
    await stream.start(job_id, "a2")
    await stream.publish(job_id, "a2", "only this")
    await until(lambda: follower.text == "only this")
    follower.store.set(status=Status.COMPLETED, result=result("only this"))
    await stream.end(job_id, "a2")
    ended = await follower.ended()
    assert follower.text == "only this" and ended.record.status is Status.COMPLETED


async def test_a_stored_result_unlike_the_sent_text_ends_with_an_error(
        stream: TokenStream, job_id: str) -> None:
    await stream.start(job_id, "a1")
    follower = Follower(stream, job_id)
    await stream.publish(job_id, "a1", "one reply")
    await until(lambda: follower.text == "one reply")
    # another attempt ran where this stream could not see it, and completed
    follower.store.set(status=Status.COMPLETED, result=result("another reply"))
    ended = await follower.ended()
    assert follower.text == "one reply"
    assert ended.record.result is None and "restarted" in (ended.record.error or "")


async def test_with_no_live_stream_the_reply_comes_from_the_stored_result(
        stream: TokenStream, job_id: str) -> None:
    follower = Follower(stream, job_id)  # the job runs where this stream does not reach
    await asyncio.sleep(0.2)
    follower.store.set(status=Status.COMPLETED, result=result("all of it"))
    ended = await follower.ended()
    assert follower.text == "all of it" and ended.record.status is Status.COMPLETED
