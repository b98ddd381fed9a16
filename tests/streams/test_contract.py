"""What every token stream does, whichever backend carries the text."""

from __future__ import annotations

import asyncio
import time

import pytest

from stratus.streams import Position, State, TokenStream
from tests.streams.conftest import read_text

pytestmark = pytest.mark.anyio


async def test_a_reader_sees_the_deltas_in_order_while_the_attempt_runs(
        stream: TokenStream, job_id: str) -> None:
    await stream.start(job_id, "a1")
    for piece in ("he", "llo", " wor", "ld"):
        await stream.publish(job_id, "a1", piece)
    text, got = await read_text(stream, job_id, Position(), "hello world")
    assert text == "hello world" and got.state is State.LIVE
    assert got.position.attempt == "a1"


async def test_a_read_returns_at_once_for_text_published_before_it(
        stream: TokenStream, job_id: str) -> None:
    await stream.start(job_id, "a1")
    await stream.publish(job_id, "a1", "a")
    _, first = await read_text(stream, job_id, Position(), "a")
    await stream.publish(job_id, "a1", "b")  # while the reader was busy sending "a"
    got = await asyncio.wait_for(stream.read(job_id, first.position, 30), 2)
    assert got.texts == ("b",) and got.state is State.LIVE


async def test_a_waiting_read_returns_with_the_next_delta(stream: TokenStream,
                                                          job_id: str) -> None:
    await stream.start(job_id, "a1")
    await stream.publish(job_id, "a1", "a")
    _, first = await read_text(stream, job_id, Position(), "a")
    waiter = asyncio.create_task(stream.read(job_id, first.position, 30))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await stream.publish(job_id, "a1", "b")
    got = await asyncio.wait_for(waiter, 2)
    assert got.texts == ("b",) and got.state is State.LIVE


async def test_reading_goes_on_where_it_left_off(stream: TokenStream, job_id: str) -> None:
    await stream.start(job_id, "a1")
    await stream.publish(job_id, "a1", "one ")
    text, first = await read_text(stream, job_id, Position(), "one ")
    assert text == "one "
    for piece in ("two ", "three"):
        await stream.publish(job_id, "a1", piece)
    text, second = await read_text(stream, job_id, first.position, "two three")
    assert text == "two three"
    again = await stream.read(job_id, second.position, 0)  # nothing new: no waiting
    assert again.texts == () and again.state is State.LIVE
    text, _ = await read_text(stream, job_id, Position(), "one two three")
    assert text == "one two three"  # another reader, from the start


async def test_a_quiet_stream_is_live_once_the_timeout_passed(stream: TokenStream,
                                                              job_id: str) -> None:
    await stream.start(job_id, "a1")
    begun = time.monotonic()
    got = await stream.read(job_id, Position(), 0.3)
    assert got.texts == () and got.state is State.LIVE
    assert 0.25 <= time.monotonic() - begun < 2


async def test_the_end_reaches_a_waiting_reader(stream: TokenStream, job_id: str) -> None:
    await stream.start(job_id, "a1")
    await stream.publish(job_id, "a1", "all")
    _, first = await read_text(stream, job_id, Position(), "all")
    waiter = asyncio.create_task(stream.read(job_id, first.position, 30))
    await asyncio.sleep(0.1)
    await stream.end(job_id, "a1")
    got = await asyncio.wait_for(waiter, 2)
    assert got.texts == () and got.state is State.ENDED
    again = await stream.read(job_id, got.position, 30)  # at once: there is nothing more
    assert again.texts == () and again.state is State.ENDED
    await stream.publish(job_id, "a1", "late")  # after the end: dropped
    assert (await stream.read(job_id, got.position, 0)).texts == ()


async def test_a_reader_arriving_after_the_end_gets_all_and_the_end(
        stream: TokenStream, job_id: str) -> None:
    await stream.start(job_id, "a1")
    for piece in ("a", "b", "c"):
        await stream.publish(job_id, "a1", piece)
    await stream.end(job_id, "a1")
    got = await stream.read(job_id, Position(), 0)
    assert "".join(got.texts) == "abc" and got.state is State.ENDED


async def test_a_new_attempt_is_never_spliced_with_the_old_one(stream: TokenStream,
                                                               job_id: str) -> None:
    await stream.start(job_id, "a1")
    await stream.publish(job_id, "a1", "first try")
    _, old = await read_text(stream, job_id, Position(), "first try")
    await stream.start(job_id, "a2")  # the job was taken over by a new attempt
    await stream.end(job_id, "a1")  # the old attempt ending leaves the new one alone
    await stream.publish(job_id, "a1", "late")
    fresh = await stream.read(job_id, Position(), 0.3)
    assert fresh.texts == () and fresh.state is State.LIVE
    await stream.publish(job_id, "a2", "again")
    text, got = await read_text(stream, job_id, Position(), "again")
    assert text == "again" and got.position.attempt == "a2"
    # the reader that had read the old attempt's text is told, and given none of the new
    restarted = await asyncio.wait_for(stream.read(job_id, old.position, 30), 3)
    assert restarted.texts == () and restarted.state is State.RESTARTED


async def test_a_reader_that_read_nothing_follows_the_new_attempt(stream: TokenStream,
                                                                  job_id: str) -> None:
    await stream.start(job_id, "a1")
    quiet = await stream.read(job_id, Position(), 0.1)
    assert quiet.texts == () and quiet.state is State.LIVE
    await stream.start(job_id, "a2")
    await stream.publish(job_id, "a2", "second")
    text, got = await read_text(stream, job_id, quiet.position, "second")
    assert text == "second" and got.state is State.LIVE


async def test_a_reader_waiting_before_the_attempt_starts_gets_its_text(
        stream: TokenStream, job_id: str) -> None:
    waiter = asyncio.create_task(stream.read(job_id, Position(), 30))
    await asyncio.sleep(0.1)
    await stream.start(job_id, "a1")
    await stream.publish(job_id, "a1", "hello")
    got = await asyncio.wait_for(waiter, 3)
    assert got.texts == ("hello",) and got.state is State.LIVE


async def test_no_attempt_is_absent_after_a_short_wait(stream: TokenStream,
                                                       job_id: str) -> None:
    assert (await stream.read(job_id, Position(), 0)).state is State.ABSENT
    begun = time.monotonic()
    got = await stream.read(job_id, Position(), 30)
    assert got.texts == () and got.state is State.ABSENT
    assert time.monotonic() - begun < 3  # not the whole timeout
