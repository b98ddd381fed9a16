"""The in-process token bus: a reader never misses a delta or the end of a stream."""

from __future__ import annotations

import asyncio

import pytest

from stratus.streams import TokenBus

pytestmark = pytest.mark.anyio


async def test_wait_returns_at_once_for_text_published_before_it() -> None:
    bus = TokenBus()
    stream = bus.reset("j")
    bus.publish(stream, "a")
    sent = bus.since("j", 0)
    bus.publish(stream, "b")  # while the reader was busy sending "a"
    await asyncio.wait_for(bus.wait("j", len(sent), timeout=30), 1)
    assert bus.since("j", len(sent)) == ["b"]


async def test_wait_returns_at_once_once_the_stream_closed() -> None:
    bus = TokenBus()
    stream = bus.reset("j")
    bus.publish(stream, "a")
    bus.close("j", stream)
    await asyncio.wait_for(bus.wait("j", 1, timeout=30), 1)
    assert bus.closed("j") and bus.since("j", 0) == ["a"]


async def test_a_reader_waiting_before_the_job_starts_is_woken_by_its_text() -> None:
    bus = TokenBus()
    waiter = asyncio.create_task(bus.wait("j", 0, timeout=30))
    await asyncio.sleep(0)
    stream = bus.reset("j")  # the worker starts the job
    bus.publish(stream, "hello")
    await asyncio.wait_for(waiter, 1)
    assert bus.since("j", 0) == ["hello"] and not bus.closed("j")


async def test_a_new_attempt_starts_from_nothing() -> None:
    bus = TokenBus()
    first = bus.reset("j")
    bus.publish(first, "first try")
    second = bus.reset("j")  # the job was taken over by a new attempt here
    bus.close("j", first)  # the old attempt ending leaves the new one alone
    bus.publish(first, "late")
    assert bus.since("j", 0) == [] and not bus.closed("j")
    bus.publish(second, "again")
    assert bus.since("j", 0) == ["again"]
