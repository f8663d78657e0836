"""The plugin conformance suite, run against both built-in backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chitram_core.cache import Cache, open_cache
from chitram_core.testing.cache_conformance import CacheConformance


class TestMemoryCacheConformance(CacheConformance):
    @pytest.fixture
    async def cache(self) -> AsyncIterator[Cache]:
        cache = open_cache("memory://?max_entries=1000")
        assert cache is not None
        yield cache
        await cache.close()


@pytest.mark.redis
class TestRedisCacheConformance(CacheConformance):
    @pytest.fixture
    async def cache(self, redis_url: str, redis_prefix: str) -> AsyncIterator[Cache]:
        cache = open_cache(redis_url, prefix=redis_prefix)
        assert cache is not None
        yield cache
        await cache.close()
