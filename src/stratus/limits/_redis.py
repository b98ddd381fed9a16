"""Rate-limit buckets in Redis, shared by every API node.

One Lua script refills, checks and takes (or gives back) all of a request's dimensions
atomically, on Redis's own clock (``TIME``), so no two nodes' clocks are ever compared. While
Redis cannot be reached, each node falls back to local buckets holding ``1 / api_nodes`` of
each limit: the limits hold roughly across the nodes, admission never stops, and every
fallback is logged and counted.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from stratus import _keys
from stratus.limits._local import LocalRateLimiter
from stratus.limits._types import WINDOW, LimitState, Want, outcome, refused, wants

log = logging.getLogger("stratus.limits")

Mode = Literal["check", "take", "refund"]
WARN_EVERY = 30.0  # seconds between warnings while Redis is unreachable

# KEYS[1]: the key's hash. ARGV: mode, window, then (dimension, limit, cost) per dimension.
# Returns: 1 if the request fits (0 if not), then each dimension's level after the call.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local mode = ARGV[1]
local window = tonumber(ARGV[2])
local n = (#ARGV - 2) / 3
local levels = {}
local fits = 1
for i = 1, n do
  local dim, limit, cost = ARGV[3 * i], tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local level = tonumber(redis.call('HGET', KEYS[1], dim .. ':level'))
  local at = tonumber(redis.call('HGET', KEYS[1], dim .. ':at'))
  if level == nil or at == nil then
    level = limit
  else
    level = math.min(limit, level + math.max(0, now - at) * limit / window)
  end
  levels[i] = level
  if mode ~= 'refund' and level < cost then fits = 0 end
end
local out = {tostring(fits)}
for i = 1, n do
  local dim, limit, cost = ARGV[3 * i], tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local level = levels[i]
  if mode == 'take' and fits == 1 then
    level = level - cost
  elseif mode == 'refund' then
    level = math.min(limit, level + cost)
  end
  if mode ~= 'check' then
    redis.call('HSET', KEYS[1], dim .. ':level', tostring(level), dim .. ':at', tostring(now))
  end
  out[i + 1] = tostring(level)
end
if mode ~= 'check' then
  redis.call('EXPIRE', KEYS[1], math.ceil(window * 2))
end
return out
"""


class RedisRateLimiter:
    def __init__(self, client: aioredis.Redis, *, api_nodes: int = 1) -> None:
        self._client = client
        self._script = client.register_script(_SCRIPT)
        self._api_nodes = max(1, api_nodes)
        self._local = LocalRateLimiter()
        self._warned = 0.0
        self.fallbacks = 0  # requests checked against the local share while Redis was down

    @classmethod
    def from_url(cls, url: str, *, api_nodes: int = 1) -> RedisRateLimiter:
        client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return cls(client, api_nodes=api_nodes)

    async def check(self, key_id: str, *, requests_per_minute: int | None,
                    tokens_per_minute: int | None, tokens: int) -> None:
        await self._run("check", key_id, wants(requests_per_minute, tokens_per_minute, tokens))

    async def admit(self, key_id: str, *, requests_per_minute: int | None,
                    tokens_per_minute: int | None, tokens: int) -> LimitState | None:
        return await self._run("take", key_id,
                               wants(requests_per_minute, tokens_per_minute, tokens))

    async def refund(self, key_id: str, *, requests_per_minute: int | None,
                     tokens_per_minute: int | None, tokens: int) -> None:
        await self._run("refund", key_id,
                        wants(requests_per_minute, tokens_per_minute, tokens, fits=False))

    async def close(self) -> None:
        await self._client.aclose()

    async def _run(self, mode: Mode, key_id: str, wanted: list[Want]) -> LimitState | None:
        if not wanted:
            return None
        args: list[str | float | int] = [mode, WINDOW]
        for dim, limit, cost in wanted:
            args += [dim, limit, cost]
        try:
            reply = await self._script(keys=[_keys.rate_limit(key_id)], args=args)
        except RedisError as exc:
            return self._fallback(mode, key_id, wanted, exc)
        fits = int(reply[0]) == 1
        state, short = outcome(wanted, [float(level) for level in reply[1:]])
        if not fits:  # nothing was taken: the levels say what is short
            raise refused(short, state)
        return state

    def _fallback(self, mode: Mode, key_id: str, wanted: list[Want],
                  error: RedisError) -> LimitState | None:
        self.fallbacks += 1
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("Redis is unreachable (%s): rate limits fall back to this node's "
                        "share (1/%d of each limit)", error, self._api_nodes)
        share = [(dim, max(1, math.floor(limit / self._api_nodes)), cost)
                 for dim, limit, cost in wanted]
        share = [(dim, limit, min(cost, limit)) for dim, limit, cost in share]
        if mode == "refund":
            self._local.give(key_id, share)
            return None
        return self._local.take(key_id, share, take=mode == "take")
