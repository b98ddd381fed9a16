"""Per-key rate limits: requests per minute and tokens per minute, as token buckets.

Each limited dimension of a key is a bucket holding up to ``limit`` units that refills at
``limit / 60`` units a second, so a key may burst up to its whole minute and then goes on at
the steady rate. A request costs one unit of the requests bucket and ``input tokens +
max_tokens`` units of the tokens bucket (its worst case, known at admission). It is admitted
only if both buckets hold enough; otherwise neither is charged. A request refused after its
limits were taken (no credits, a full queue, a bad webhook URL) gets them back: only admitted
requests count.

The buckets live in the memory of the process that admits the request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from stratus.errors import InvalidRequest, RateLimited

WINDOW = 60.0  # seconds: the limits are per minute


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


class _Level:
    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level = level
        self.at = at


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._levels: dict[tuple[str, str], _Level] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str, *, requests_per_minute: int | None,
              tokens_per_minute: int | None, tokens: int) -> None:
        """Raise ``RateLimited`` if the key could not take a request of ``tokens`` tokens
        now, without taking anything: the cheap check before a request is worked on."""
        self._take(key_id, requests_per_minute, tokens_per_minute, tokens, take=False)

    def admit(self, key_id: str, *, requests_per_minute: int | None,
              tokens_per_minute: int | None, tokens: int) -> LimitState | None:
        """Charge one request of ``tokens`` tokens to the key, or raise ``RateLimited``.
        Returns the state of the key's limits (None when it has none)."""
        return self._take(key_id, requests_per_minute, tokens_per_minute, tokens, take=True)

    def refund(self, key_id: str, *, requests_per_minute: int | None,
               tokens_per_minute: int | None, tokens: int) -> None:
        """Give back what :meth:`admit` took for a request that was not admitted after all."""
        with self._lock:
            now = self._clock()
            for dim, limit, cost in (("requests", requests_per_minute, 1),
                                     ("tokens", tokens_per_minute, tokens)):
                if limit is not None:
                    level = self._refill(key_id, dim, limit, now)
                    level.level = min(float(limit), level.level + cost)

    def _take(self, key_id: str, requests_per_minute: int | None,
              tokens_per_minute: int | None, tokens: int, *, take: bool) -> LimitState | None:
        if requests_per_minute is None and tokens_per_minute is None:
            return None
        if tokens_per_minute is not None and tokens > tokens_per_minute:
            raise InvalidRequest(
                f"this request may use {tokens} tokens (input + max_tokens) but this API key "
                f"is limited to {tokens_per_minute} tokens per minute: lower max_tokens or "
                "shorten the input")
        wants = [(dim, limit, cost) for dim, limit, cost in
                 (("requests", requests_per_minute, 1), ("tokens", tokens_per_minute, tokens))
                 if limit is not None]
        with self._lock:
            now = self._clock()
            levels = {dim: self._refill(key_id, dim, limit, now) for dim, limit, _ in wants}
            short = {dim: (cost - levels[dim].level) * WINDOW / limit
                     for dim, limit, cost in wants if levels[dim].level < cost}
            if not short and take:
                for dim, _, cost in wants:
                    levels[dim].level -= cost
            state = LimitState(**{
                dim: Bucket(limit=limit, remaining=max(0, math.floor(levels[dim].level)),
                            reset=(limit - levels[dim].level) * WINDOW / limit)
                for dim, limit, _ in wants})
        if short:
            which = " and ".join(f"{dim} per minute" for dim in short)
            wait = max(short.values())
            raise RateLimited(
                f"rate limit reached: this API key's {which} are used up; retry in "
                f"{math.ceil(wait)} s (see the x-ratelimit-* headers)",
                retry_after=wait, limits=state)
        return state

    def _refill(self, key_id: str, dim: str, limit: int, now: float) -> _Level:
        level = self._levels.get((key_id, dim))
        if level is None:
            level = self._levels[(key_id, dim)] = _Level(float(limit), now)
        else:
            level.level = min(float(limit), level.level + (now - level.at) * limit / WINDOW)
            level.at = now
        return level
