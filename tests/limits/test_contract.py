"""What every rate limiter does, whichever backend keeps the buckets."""

from __future__ import annotations

import pytest

from stratus.errors import InvalidRequest, RateLimited
from stratus.limits import RateLimiter

pytestmark = pytest.mark.anyio


async def test_a_burst_up_to_the_limit_then_429(limiter: RateLimiter, key_id: str) -> None:
    limits = {"requests_per_minute": 3, "tokens_per_minute": None}
    for left in (2, 1, 0):
        state = await limiter.admit(key_id, tokens=10, **limits)
        assert state.requests.remaining == left and state.tokens is None
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(key_id, tokens=10, **limits)
    # one request comes back every 20 s at 3 per minute
    assert refused.value.retry_after == pytest.approx(20.0, abs=0.5)
    assert refused.value.limits.requests.remaining == 0
    # another key has its own bucket
    state = await limiter.admit(key_id + "-other", tokens=10, **limits)
    assert state.requests.remaining == 2


async def test_tokens_and_a_refusal_charges_nothing(limiter: RateLimiter, key_id: str) -> None:
    limits = {"requests_per_minute": 10, "tokens_per_minute": 100}
    state = await limiter.admit(key_id, tokens=70, **limits)
    assert (state.requests.remaining, state.tokens.remaining) == (9, 30)
    assert state.tokens.reset == pytest.approx(42.0, abs=0.5)  # 70 back at 100/60 a second
    with pytest.raises(RateLimited, match="tokens per minute") as refused:
        await limiter.admit(key_id, tokens=50, **limits)
    assert refused.value.retry_after == pytest.approx(12.0, abs=0.5)
    state = await limiter.admit(key_id, tokens=30, **limits)  # the refusal took no request
    assert (state.requests.remaining, state.tokens.remaining) == (8, 0)


async def test_unlimited_key_and_a_request_bigger_than_the_limit(limiter: RateLimiter,
                                                                 key_id: str) -> None:
    assert await limiter.admit(key_id, requests_per_minute=None, tokens_per_minute=None,
                               tokens=10**9) is None
    with pytest.raises(InvalidRequest, match="lower max_tokens"):
        await limiter.admit(key_id, requests_per_minute=None, tokens_per_minute=100,
                            tokens=101)


async def test_check_takes_nothing_and_refund_gives_back(limiter: RateLimiter,
                                                         key_id: str) -> None:
    limits = {"requests_per_minute": 2, "tokens_per_minute": 100}
    for _ in range(5):
        await limiter.check(key_id, tokens=1, **limits)  # looking never uses the limit up
    await limiter.admit(key_id, tokens=60, **limits)
    with pytest.raises(RateLimited):
        await limiter.check(key_id, tokens=50, **limits)
    await limiter.refund(key_id, tokens=60, **limits)  # that request was refused after all
    state = await limiter.admit(key_id, tokens=100, **limits)
    assert state.requests.remaining == 1 and state.tokens.remaining == 0
    await limiter.refund(key_id, tokens=1000, **limits)  # never above the limit
    assert (await limiter.admit(key_id, tokens=100, **limits)).tokens.remaining == 0
