"""The rate limiter over any cache backend."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from chitram_core.cache.base import RateDecision
from chitram_core.cache.memory import MemoryCache
from chitram_core.cache.redis import create_cache as create_redis
from chitram_core.errors import RateLimitExceeded
from chitram_core.limits import RateLimiter
from chitram_core.settings import RateLimit

pytestmark = pytest.mark.anyio


async def test_the_limit_is_allowed_then_refused() -> None:
    limiter = RateLimiter(MemoryCache())
    rule = RateLimit(3, 60)
    decisions = [await limiter.hit("upload", "user-1", rule) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after >= 1


async def test_check_raises_rate_limit_exceeded_with_retry_after() -> None:
    limiter = RateLimiter(MemoryCache())
    rule = RateLimit(1, 60)
    await limiter.check("upload", "user-1", rule)
    with pytest.raises(RateLimitExceeded) as caught:
        await limiter.check("upload", "user-1", rule)
    assert caught.value.limit == 1
    assert 1 <= caught.value.retry_after <= 60
    assert caught.value.details == {"limit": 1, "retry_after": caught.value.retry_after}
    assert caught.value.status == 429


async def test_scopes_and_identities_are_separate_buckets() -> None:
    limiter = RateLimiter(MemoryCache())
    rule = RateLimit(1, 60)
    assert (await limiter.hit("upload", "a", rule)).allowed
    assert (await limiter.hit("login", "a", rule)).allowed
    assert (await limiter.hit("upload", "b", rule)).allowed
    assert not (await limiter.hit("upload", "a", rule)).allowed


def test_identities_are_not_stored_in_clear() -> None:
    key = RateLimiter.key("login", "ada@example.com")
    assert "ada" not in key
    assert key.startswith("login:")


async def test_exact_under_concurrency() -> None:
    limiter = RateLimiter(MemoryCache())
    rule = RateLimit(10, 60)
    allowed = 0

    async def one() -> None:
        nonlocal allowed
        allowed += (await limiter.hit("upload", "user", rule)).allowed

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(one)
    assert allowed == 10


class BrokenCache(MemoryCache):
    async def hit(self, key: str, limit: int, period: float) -> RateDecision:
        raise RuntimeError("backend exploded")


async def test_a_failing_backend_fails_open_by_default() -> None:
    decision = await RateLimiter(BrokenCache()).hit("upload", "u", RateLimit(1, 60))
    assert decision.allowed
    assert decision.degraded


async def test_a_failing_backend_can_fail_closed() -> None:
    limiter = RateLimiter(BrokenCache(), fail_open=False)
    with pytest.raises(RateLimitExceeded):
        await limiter.check("upload", "u", RateLimit(1, 60))


async def test_a_redis_outage_never_raises(unused_port: int) -> None:
    limiter = RateLimiter(create_redis(f"redis://127.0.0.1:{unused_port}/0"))
    decision = await limiter.check("upload", "u", RateLimit(1, 60))
    assert decision.degraded
    assert limiter.status == "disconnected"


@pytest.mark.redis
async def test_exact_under_concurrency_on_redis(redis_url: str, redis_prefix: str) -> None:
    caches = [create_redis(redis_url, prefix=redis_prefix) for _ in range(3)]
    limiters = [RateLimiter(cache) for cache in caches]
    rule = RateLimit(10, 60)
    results: list[Any] = []

    async def one(i: int) -> None:
        results.append(await limiters[i % 3].hit("upload", "user", rule))

    async with anyio.create_task_group() as tg:
        for i in range(60):
            tg.start_soon(one, i)
    assert sum(d.allowed for d in results) == 10
    assert all(not d.degraded for d in results)
    for cache in caches:
        await cache.close()
