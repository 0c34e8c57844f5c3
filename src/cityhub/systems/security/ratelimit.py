"""Requests per minute per client and per source address, in fixed one-minute windows.

With ``CITYHUB_REDIS_URL`` every hub process counts in Redis (``INCR`` with a 2-minute expiry on a
key per window), so the limit holds for the cluster; otherwise each process counts in memory.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)

WINDOW = 60


class RateLimiter(Protocol):
    backend: str

    async def hit(self, key: str) -> int:
        """Count one request for ``key`` in the current window and return the window's count."""

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    backend = "memory"

    def __init__(self) -> None:
        self._window = 0
        self._counts: dict[str, int] = {}

    async def hit(self, key: str) -> int:
        window = int(time.time()) // WINDOW
        if window != self._window:
            self._window = window
            self._counts = {}
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count

    async def aclose(self) -> None:
        self._counts = {}


class RedisRateLimiter:
    backend = "redis"

    def __init__(self, url: str, prefix: str = "cityhub:rl") -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._prefix = prefix

    async def hit(self, key: str) -> int:
        window = int(time.time()) // WINDOW
        name = f"{self._prefix}:{window}:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, 2 * WINDOW)
            count, _ = await pipe.execute()
        return int(count)

    async def aclose(self) -> None:
        await self._redis.aclose()


def create_rate_limiter(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()
