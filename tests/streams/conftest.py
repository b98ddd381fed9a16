from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from stratus.streams import LocalTokenStream, Position, Read, RedisTokenStream, State, TokenStream
from tests._services import RedisServer


@pytest.fixture(params=["local", "redis"])
async def stream(request: pytest.FixtureRequest) -> AsyncIterator[TokenStream]:
    """Each token stream backend, behind the same contract."""
    if request.param == "local":
        made: TokenStream = LocalTokenStream()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisTokenStream.from_url(server.url)
    yield made
    await made.close()


@pytest.fixture
def job_id() -> str:
    return "job_" + uuid.uuid4().hex[:12]


async def read_text(stream: TokenStream, job_id: str, position: Position, want: str,
                    timeout: float = 5.0) -> tuple[str, Read]:
    """Read until the text past ``position`` is as long as ``want`` (deltas may come
    coalesced), the stream is no longer live, or ``timeout``; the text and the last read."""
    text = ""
    deadline = time.monotonic() + timeout
    while True:
        got = await stream.read(job_id, position, min(1.0, timeout))
        text += "".join(got.texts)
        position = got.position
        if (len(text) >= len(want) or got.state is not State.LIVE
                or time.monotonic() > deadline):
            return text, got


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
