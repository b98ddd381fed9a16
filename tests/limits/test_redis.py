"""Buckets in Redis: shared by every node, and a local share while Redis is gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stratus.errors import RateLimited
from stratus.limits import RedisRateLimiter
from tests._services import RedisServer

pytestmark = pytest.mark.anyio


async def admitted(limiter: RedisRateLimiter, key_id: str, tries: int, **limits) -> int:
    count = 0
    for _ in range(tries):
        try:
            await limiter.admit(key_id, tokens=1, **limits)
            count += 1
        except RateLimited:
            pass
    return count


async def test_two_nodes_share_one_limit(redis_server: RedisServer, key_id: str) -> None:
    nodes = [RedisRateLimiter.from_url(redis_server.url, api_nodes=2) for _ in range(2)]
    limits = {"requests_per_minute": 30, "tokens_per_minute": None}
    counts = await asyncio.gather(*(admitted(node, key_id, 40, **limits) for node in nodes))
    assert sum(counts) == 30  # not 60: the bucket is the key's, wherever it is asked
    assert all(node.fallbacks == 0 for node in nodes)
    for node in nodes:
        await node.close()


async def test_while_redis_is_down_each_node_keeps_its_share(tmp_path: Path,
                                                             key_id: str) -> None:
    server = RedisServer(tmp_path / "redis").start()
    limiter = RedisRateLimiter.from_url(server.url, api_nodes=3)
    limits = {"requests_per_minute": 30, "tokens_per_minute": None}
    try:
        assert await admitted(limiter, key_id, 5, **limits) == 5
        server.stop()
        # admission goes on against this node's third of the limit
        assert await admitted(limiter, key_id, 20, **limits) == 10
        assert limiter.fallbacks == 20
        server.start()
        # back on the shared bucket: this Redis kept nothing (buckets may be lost), so the
        # key starts again from a full minute
        assert await admitted(limiter, key_id, 40, **limits) == 30
        assert limiter.fallbacks == 20
    finally:
        await limiter.close()
        server.stop()
