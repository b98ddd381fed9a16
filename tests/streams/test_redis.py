"""Token streams in Redis: coalesced writes, expiring keys, and life without Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from stratus import _keys
from stratus.streams import Position, RedisTokenStream, State
from tests._services import RedisServer
from tests.conftest import SERVER_CONFIG, words
from tests.streams.conftest import read_text

pytestmark = pytest.mark.anyio


@pytest.fixture
async def stream(redis_server: RedisServer) -> AsyncIterator[RedisTokenStream]:
    made = RedisTokenStream.from_url(redis_server.url)
    yield made
    await made.close()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_server.url, decode_responses=True) as made:
        yield made


async def test_quick_deltas_are_coalesced_into_few_entries(
        stream: RedisTokenStream, client: redis.Redis, job_id: str) -> None:
    await stream.start(job_id, "a1")
    pieces = [f"t{i} " for i in range(300)]
    for piece in pieces:  # a fast engine: a token every millisecond or so
        await stream.publish(job_id, "a1", piece)
        await asyncio.sleep(0.001)
    await stream.end(job_id, "a1")
    entries = client.xlen(_keys.token_stream(job_id, "a1"))
    assert 2 <= entries < 60  # about one a FLUSH_EVERY, and the end
    got = await stream.read(job_id, Position(), 0)
    assert "".join(got.texts) == "".join(pieces) and got.state is State.ENDED


async def test_the_keys_expire(redis_server: RedisServer, client: redis.Redis,
                               job_id: str) -> None:
    stream = RedisTokenStream.from_url(redis_server.url, ttl=0.5, closed_ttl=0.3)
    try:
        await stream.start(job_id, "a1")
        await stream.publish(job_id, "a1", "soon gone")
        text, got = await read_text(stream, job_id, Position(), "soon gone")
        assert text == "soon gone"
        keys = [_keys.token_stream(job_id, "a1"), _keys.token_attempt(job_id)]
        assert all(0 < client.pttl(key) <= 500 for key in keys)
        await asyncio.sleep(0.8)  # the attempt is still running, but wrote nothing for long
        assert client.exists(*keys) == 0
        assert (await stream.read(job_id, got.position, 0)).state is State.ABSENT
        assert (await stream.read(job_id, Position(), 0)).state is State.ABSENT
    finally:
        await stream.close()


async def test_the_keys_of_an_ended_attempt_expire_sooner(
        stream: RedisTokenStream, client: redis.Redis, job_id: str) -> None:
    await stream.start(job_id, "a1")
    await stream.publish(job_id, "a1", "text")
    await read_text(stream, job_id, Position(), "text")
    keys = [_keys.token_stream(job_id, "a1"), _keys.token_attempt(job_id)]
    assert all(60_000 < client.pttl(key) <= 600_000 for key in keys)
    await stream.end(job_id, "a1")
    assert all(0 < client.pttl(key) <= 60_000 for key in keys)


async def test_a_replaced_attempt_does_not_touch_the_new_ones_key(
        stream: RedisTokenStream, client: redis.Redis, job_id: str) -> None:
    await stream.start(job_id, "a1")
    await stream.start(job_id, "a2")
    await stream.publish(job_id, "a2", "new")
    await read_text(stream, job_id, Position(), "new")
    await stream.publish(job_id, "a1", "old")
    await stream.end(job_id, "a1")
    assert client.get(_keys.token_attempt(job_id)) == "a2"
    assert client.pttl(_keys.token_attempt(job_id)) > 60_000


async def test_a_write_tried_again_is_not_added_twice(
        stream: RedisTokenStream, client: redis.Redis, job_id: str) -> None:
    for _ in range(2):  # as after a reply lost on the way back
        await stream._write(job_id, "a1", 1, "t", "once")
    assert client.xlen(_keys.token_stream(job_id, "a1")) == 1


async def test_a_reader_that_missed_entries_is_told_nothing_is_live(
        stream: RedisTokenStream, client: redis.Redis, job_id: str) -> None:
    await stream.start(job_id, "a1")
    await stream.publish(job_id, "a1", "lost")
    _, first = await read_text(stream, job_id, Position(), "lost")
    client.xtrim(_keys.token_stream(job_id, "a1"), maxlen=0)  # as if capped
    await stream.publish(job_id, "a1", "kept")
    text, _ = await read_text(stream, job_id, first.position, "kept")
    assert text == "kept"  # the reader had read what was trimmed
    got = await stream.read(job_id, Position(), 2)  # this one never saw "lost"
    assert got.texts == () and got.state is State.ABSENT


async def test_without_redis_writers_go_on_and_readers_see_nothing_live(
        tmp_path: Path, job_id: str, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(tmp_path / "redis").start()
    stream = RedisTokenStream.from_url(server.url)
    try:
        await stream.start(job_id, "a1")
        await stream.publish(job_id, "a1", "before ")
        _, first = await read_text(stream, job_id, Position(), "before ")
        server.stop()
        with caplog.at_level(logging.WARNING, logger="stratus.streams"):
            begun = time.monotonic()
            for _ in range(50):
                await stream.publish(job_id, "a1", "during ")
                await asyncio.sleep(0.01)
            assert time.monotonic() - begun < 3  # publishing never waited on Redis
            got = await stream.read(job_id, first.position, 30)
            assert got.texts == () and got.state is State.ABSENT
            assert (await stream.read(job_id, Position(), 30)).state is State.ABSENT
            begun = time.monotonic()
            await stream.end(job_id, "a1")
            assert time.monotonic() - begun < 3
        assert stream.failures >= 2
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1  # at most one every WARN_EVERY
        server.start()  # back, empty: a new attempt streams again
        await stream.start(job_id, "a2")
        await stream.publish(job_id, "a2", "after")
        text, _ = await read_text(stream, job_id, Position(), "after")
        assert text == "after"
    finally:
        await stream.close()
        server.stop()


def test_a_server_on_redis_streams_its_tokens_through_it(make_server, redis_server: RedisServer,
                                                         client: redis.Redis) -> None:
    server = make_server(SERVER_CONFIG, env={"STRATUS_REDIS_URL": redis_server.url})
    body = {"messages": [{"role": "user", "content": words(8)}], "stream": True}
    deltas = []
    with httpx.stream("POST", server.url + "/v1/echo-slow", json=body, timeout=60,
                      headers={"x-api-key": server.key}) as response:
        assert response.status_code == 200
        rid = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: ") and '"text_delta"' in line:
                deltas.append(httpx.Response(200, content=line[6:]).json())
    assert "".join(d["delta"]["text"] for d in deltas) == words(8)
    assert len(deltas) > 1  # as the engine made them, not from the stored result at the end
    assert client.get(_keys.token_attempt(rid)) is not None
