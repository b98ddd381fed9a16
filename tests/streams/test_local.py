"""The in-process token stream's own concerns."""

from __future__ import annotations

import asyncio

import pytest

from stratus.streams import LocalTokenStream, Position, State, _local

pytestmark = pytest.mark.anyio


async def test_a_closed_stream_is_dropped_a_little_later(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local, "KEEP_CLOSED", 0.05)
    stream = LocalTokenStream()
    await stream.start("j", "a1")
    await stream.publish("j", "a1", "text")
    await stream.end("j", "a1")
    got = await stream.read("j", Position(), 0)
    assert got.texts == ("text",) and got.state is State.ENDED
    await asyncio.sleep(0.1)
    # gone: a reader completes from the stored result
    assert (await stream.read("j", got.position, 0)).state is State.ABSENT


async def test_deltas_keep_their_size() -> None:
    stream = LocalTokenStream()
    await stream.start("j", "a1")
    for piece in ("a", "b", "c"):
        await stream.publish("j", "a1", piece)
    assert (await stream.read("j", Position(), 0)).texts == ("a", "b", "c")
