"""Where each backend is chosen from the configuration: one place, by URL."""

from __future__ import annotations

from stratus.config import Config
from stratus.limits import LocalRateLimiter, RateLimiter, RedisRateLimiter


def rate_limiter(config: Config) -> RateLimiter:
    """Redis-backed buckets shared by every API node if ``[redis] url`` is set (or
    ``STRATUS_REDIS_URL``); otherwise buckets in this process."""
    if config.redis.url:
        return RedisRateLimiter.from_url(config.redis.url, api_nodes=config.redis.api_nodes)
    return LocalRateLimiter()
