"""Buckets in the process, on a clock the test moves: they refill at the steady rate."""

from __future__ import annotations

import pytest

from stratus.errors import InvalidRequest, RateLimited
from stratus.limits import LocalRateLimiter

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_requests_per_minute_burst_then_refill() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(clock)
    for left in (2, 1, 0):
        state = await limiter.admit("k", requests_per_minute=3, tokens_per_minute=None, tokens=10)
        assert state.requests.remaining == left and state.tokens is None
    with pytest.raises(RateLimited) as refused:
        await limiter.admit("k", requests_per_minute=3, tokens_per_minute=None, tokens=10)
    # one request comes back every 20 s at 3 per minute
    assert refused.value.retry_after == pytest.approx(20.0)
    assert refused.value.headers["Retry-After"] == "20"
    assert refused.value.limits.requests.remaining == 0
    clock.now += 20
    assert (await limiter.admit("k", requests_per_minute=3, tokens_per_minute=None,
                         tokens=10)).requests.remaining == 0
    # another key has its own bucket
    assert (await limiter.admit("other", requests_per_minute=3, tokens_per_minute=None,
                         tokens=10)).requests.remaining == 2


async def test_tokens_per_minute_and_refusal_charges_nothing() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(clock)
    state = await limiter.admit("k", requests_per_minute=10, tokens_per_minute=100, tokens=70)
    assert (state.requests.remaining, state.tokens.remaining) == (9, 30)
    assert state.tokens.reset == pytest.approx(42.0)  # 70 tokens back at 100/60 a second
    with pytest.raises(RateLimited, match="tokens per minute") as refused:
        await limiter.admit("k", requests_per_minute=10, tokens_per_minute=100, tokens=50)
    assert refused.value.retry_after == pytest.approx(12.0)
    # the refused request took no request from the other bucket
    state = await limiter.admit("k", requests_per_minute=10, tokens_per_minute=100, tokens=30)
    assert (state.requests.remaining, state.tokens.remaining) == (8, 0)


async def test_unlimited_key_and_a_request_bigger_than_the_limit() -> None:
    limiter = LocalRateLimiter(Clock())
    assert await limiter.admit("k", requests_per_minute=None, tokens_per_minute=None,
                         tokens=10**9) is None
    with pytest.raises(InvalidRequest, match="lower max_tokens"):
        await limiter.admit("k", requests_per_minute=None, tokens_per_minute=100, tokens=101)


async def test_check_takes_nothing_and_refund_gives_back() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(clock)
    limits = {"requests_per_minute": 2, "tokens_per_minute": 100}
    for _ in range(5):
        await limiter.check("k", tokens=1, **limits)  # looking never uses the limit up
    await limiter.admit("k", tokens=60, **limits)
    with pytest.raises(RateLimited):
        await limiter.check("k", tokens=50, **limits)
    await limiter.refund("k", tokens=60, **limits)  # that request was refused after all
    state = await limiter.admit("k", tokens=100, **limits)
    assert state.requests.remaining == 1 and state.tokens.remaining == 0
    await limiter.refund("k", tokens=1000, **limits)  # never above the limit
    assert (await limiter.admit("k", tokens=100, **limits)).tokens.remaining == 0
