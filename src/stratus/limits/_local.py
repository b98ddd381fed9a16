"""Rate-limit buckets in the memory of the process that admits the request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from stratus.limits._types import WINDOW, LimitState, Want, outcome, refused, wants


class _Level:
    __slots__ = ("at", "level")

    def __init__(self, level: float, at: float) -> None:
        self.level = level
        self.at = at


class LocalRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._levels: dict[tuple[str, str], _Level] = {}
        self._lock = threading.Lock()

    async def check(self, key_id: str, *, requests_per_minute: int | None,
                    tokens_per_minute: int | None, tokens: int) -> None:
        self.take(key_id, wants(requests_per_minute, tokens_per_minute, tokens), take=False)

    async def admit(self, key_id: str, *, requests_per_minute: int | None,
                    tokens_per_minute: int | None, tokens: int) -> LimitState | None:
        return self.take(key_id, wants(requests_per_minute, tokens_per_minute, tokens),
                         take=True)

    async def refund(self, key_id: str, *, requests_per_minute: int | None,
                     tokens_per_minute: int | None, tokens: int) -> None:
        self.give(key_id, wants(requests_per_minute, tokens_per_minute, tokens, fits=False))

    async def close(self) -> None:
        return None

    def take(self, key_id: str, wanted: list[Want], *, take: bool) -> LimitState | None:
        """Check ``wanted`` and, with ``take``, charge it; ``RateLimited`` if short."""
        if not wanted:
            return None
        with self._lock:
            now = self._clock()
            levels = [self._refill(key_id, dim, limit, now) for dim, limit, _ in wanted]
            state, short = outcome(wanted, [level.level for level in levels])
            if not short and take:
                for level, (_, _, cost) in zip(levels, wanted, strict=True):
                    level.level -= cost
                state, _ = outcome(wanted, [level.level for level in levels])
        if short:
            raise refused(short, state)
        return state

    def give(self, key_id: str, wanted: list[Want]) -> None:
        with self._lock:
            now = self._clock()
            for dim, limit, cost in wanted:
                level = self._refill(key_id, dim, limit, now)
                level.level = min(float(limit), level.level + cost)

    def _refill(self, key_id: str, dim: str, limit: int, now: float) -> _Level:
        level = self._levels.get((key_id, dim))
        if level is None:
            level = self._levels[(key_id, dim)] = _Level(float(limit), now)
        else:
            level.level = min(float(limit), level.level + (now - level.at) * limit / WINDOW)
            level.at = now
        return level
