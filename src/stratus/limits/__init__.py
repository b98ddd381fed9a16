"""Per-key rate limits: requests per minute and tokens per minute, as token buckets.

Each limited dimension of a key is a bucket holding up to ``limit`` units that refills at
``limit / 60`` units a second, so a key may burst up to its whole minute and then goes on at
the steady rate. A request costs one unit of the requests bucket and ``input tokens +
max_tokens`` units of the tokens bucket (its worst case, known at admission). It is admitted
only if both buckets hold enough; otherwise neither is charged. A request refused after its
limits were taken (no credits, a full queue, a bad webhook URL) gets them back: only admitted
requests count.

Two implementations: :class:`LocalRateLimiter` keeps the buckets in the process;
:class:`RedisRateLimiter` keeps them in Redis, shared by every API node, checked and taken
atomically by one script on Redis's clock, and falls back to local buckets holding a share of
each limit while Redis cannot be reached.
"""

from stratus.limits._local import LocalRateLimiter
from stratus.limits._redis import RedisRateLimiter
from stratus.limits._types import WINDOW, Bucket, LimitState, RateLimiter

__all__ = ["WINDOW", "Bucket", "LimitState", "LocalRateLimiter", "RateLimiter",
           "RedisRateLimiter"]
