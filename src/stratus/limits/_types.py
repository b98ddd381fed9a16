"""The ``RateLimiter`` protocol, the state it reports, and the arithmetic every
implementation shares."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from stratus.errors import InvalidRequest, RateLimited

WINDOW = 60.0  # seconds: the limits are per minute

Dimension = Literal["requests", "tokens"]
Want = tuple[Dimension, int, int]  # a limited dimension, its limit, what this request costs


@dataclass(frozen=True, slots=True)
class Bucket:
    """One dimension's state after a check, as the rate-limit headers report it."""

    limit: int
    remaining: int
    reset: float  # seconds until the bucket is full again


@dataclass(frozen=True, slots=True)
class LimitState:
    requests: Bucket | None = None
    tokens: Bucket | None = None


class RateLimiter(Protocol):
    async def check(self, key_id: str, *, requests_per_minute: int | None,
                    tokens_per_minute: int | None, tokens: int) -> None:
        """Raise ``RateLimited`` if the key could not take a request of ``tokens`` tokens
        now, without taking anything: the cheap check before a request is worked on."""
        ...

    async def admit(self, key_id: str, *, requests_per_minute: int | None,
                    tokens_per_minute: int | None, tokens: int) -> LimitState | None:
        """Charge one request of ``tokens`` tokens to the key, or raise ``RateLimited``.
        Returns the state of the key's limits (None when it has none)."""
        ...

    async def refund(self, key_id: str, *, requests_per_minute: int | None,
                     tokens_per_minute: int | None, tokens: int) -> None:
        """Give back what :meth:`admit` took for a request that was not admitted after all."""
        ...

    async def close(self) -> None: ...


def wants(requests_per_minute: int | None, tokens_per_minute: int | None, tokens: int,
          *, fits: bool = True) -> list[Want]:
    """The limited dimensions of a request; with ``fits``, a 400 if it could never fit the
    key's limit."""
    if fits and tokens_per_minute is not None and tokens > tokens_per_minute:
        raise InvalidRequest(
            f"this request may use {tokens} tokens (input + max_tokens) but this API key "
            f"is limited to {tokens_per_minute} tokens per minute: lower max_tokens or "
            "shorten the input")
    dims: tuple[Want | tuple[Dimension, None, int], ...] = (
        ("requests", requests_per_minute, 1), ("tokens", tokens_per_minute, tokens))
    return [(dim, limit, cost) for dim, limit, cost in dims if limit is not None]


def outcome(wanted: list[Want], levels: list[float]) -> tuple[LimitState, dict[str, float]]:
    """The state to report for the bucket ``levels`` after a check, and for each dimension
    that is short, the seconds until the request would fit."""
    short = {dim: (cost - level) * WINDOW / limit
             for (dim, limit, cost), level in zip(wanted, levels, strict=True) if level < cost}
    state = LimitState(**{
        dim: Bucket(limit=limit, remaining=max(0, math.floor(level)),
                    reset=(limit - level) * WINDOW / limit)
        for (dim, limit, _), level in zip(wanted, levels, strict=True)})
    return state, short


def refused(short: dict[str, float], state: LimitState) -> RateLimited:
    which = " and ".join(f"{dim} per minute" for dim in short)
    wait = max(short.values())
    return RateLimited(
        f"rate limit reached: this API key's {which} are used up; retry in "
        f"{math.ceil(wait)} s (see the x-ratelimit-* headers)",
        retry_after=wait, limits=state)
