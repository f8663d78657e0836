"""The cache protocol split by job: each part stands alone, and the built-ins are all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chitram_core.cache import open_cache
from chitram_core.cache.base import (
    Cache,
    CacheService,
    FencedCache,
    KeyValueCache,
    RateCounter,
    RateDecision,
    ResilientCache,
)
from chitram_core.cache.memory import MemoryCache
from chitram_core.limits.rate import RateLimiter
from chitram_core.testing.cache_conformance import RateCounterConformance


class CounterOnly:
    """A rate-counter-only component: what a plugin that counts but does not cache provides."""

    name = "counter-only"
    url = "counter-only://"

    def __init__(self) -> None:
        self._memory = MemoryCache()

    @property
    def status(self) -> str:
        return "connected"

    async def hit(self, key: str, limit: int, period: float) -> RateDecision:
        return await self._memory.hit(key, limit, period)

    async def ping(self) -> float:
        return await self._memory.ping()

    async def close(self) -> None:
        await self._memory.close()


class TestACounterOnlyComponentPassesItsPart(RateCounterConformance):
    @pytest.fixture
    async def cache(self) -> AsyncIterator[RateCounter]:
        counter = CounterOnly()
        yield counter
        await counter.close()


def test_a_counter_is_not_a_cache() -> None:
    counter = CounterOnly()
    assert isinstance(counter, RateCounter)
    assert isinstance(counter, CacheService)
    assert not isinstance(counter, KeyValueCache)
    assert not isinstance(counter, Cache)


@pytest.mark.parametrize("part", [CacheService, KeyValueCache, FencedCache, RateCounter, Cache])
def test_the_memory_cache_is_every_part(part: type) -> None:
    cache = open_cache("memory://")
    assert isinstance(cache, part)
    assert isinstance(ResilientCache(MemoryCache()), part)


@pytest.mark.anyio
async def test_the_rate_limiter_needs_only_a_counter() -> None:
    from chitram_core.settings import RateLimit

    limiter = RateLimiter(CounterOnly())
    rule = RateLimit(limit=1, period=60)
    assert (await limiter.hit("upload", "someone", rule)).allowed
    assert not (await limiter.hit("upload", "someone", rule)).allowed
