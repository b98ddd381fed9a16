from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from stratus.limits import LocalRateLimiter, RateLimiter, RedisRateLimiter
from tests._services import RedisServer


@pytest.fixture(params=["local", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """Each rate limiter backend, behind the same contract."""
    if request.param == "local":
        made: RateLimiter = LocalRateLimiter()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisRateLimiter.from_url(server.url)
    yield made
    await made.close()


@pytest.fixture
def key_id() -> str:
    return "key_" + uuid.uuid4().hex[:12]
