"""The Redis backend: URL options, failing open during an outage, and coming back by itself."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import pytest

from chitram_core.cache import cache_check
from chitram_core.cache.base import CacheUnavailable, ResilientCache
from chitram_core.cache.redis import RedisCache, create_cache

pytestmark = [pytest.mark.anyio, pytest.mark.asyncio_only]  # redis-py


def test_our_options_are_taken_out_of_the_url() -> None:
    cache = create_cache("redis://127.0.0.1:1/0?prefix=app:&fail_open=false&retry_interval=2")
    assert isinstance(cache.inner, RedisCache)
    assert cache.inner.prefix == "app:"
    assert cache.fail_open is False
    assert cache.retry_interval == 2.0


def test_the_password_is_not_shown_in_the_url() -> None:
    cache = create_cache("redis://user:secret@127.0.0.1:6379/0")
    assert "secret" not in cache.url


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match="colour"):
        create_cache("redis://127.0.0.1:6379/0", colour="blue")


async def test_an_unreachable_redis_fails_open(
    unused_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    cache = create_cache(f"redis://127.0.0.1:{unused_port}/0")
    caplog.set_level(logging.WARNING, logger="chitram_core.cache.base")
    start = time.monotonic()
    assert await cache.get("k") is None
    assert await cache.set("k", b"v", 60) is False
    assert await cache.begin_fill("k") is None
    await cache.delete("k")
    await cache.invalidate("k")
    decision = await cache.hit("k", 5, 60)
    assert decision.allowed
    assert decision.degraded
    assert time.monotonic() - start < 3
    assert cache.status == "disconnected"
    outage_logs = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage_logs) == 1
    await cache.close()


async def test_an_unreachable_redis_can_fail_closed_for_rate_limits(unused_port: int) -> None:
    cache = create_cache(f"redis://127.0.0.1:{unused_port}/0", fail_open=False)
    decision = await cache.hit("k", 5, 60)
    assert not decision.allowed
    assert decision.degraded
    assert decision.retry_after >= 1
    assert await cache.get("k") is None  # reads still just miss
    await cache.close()


async def test_ping_raises_when_redis_is_down_so_health_shows_it(unused_port: int) -> None:
    cache = create_cache(f"redis://127.0.0.1:{unused_port}/0")
    with pytest.raises(CacheUnavailable):
        await cache.ping()
    flat, check = await cache_check(cache)
    assert flat == "disconnected"
    assert check.status == "degraded"
    await cache.close()


async def test_redis_recovers_after_an_outage(
    redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chitram_core.cache.base")
    cache = create_cache(redis_server.url, retry_interval=0.2)
    assert isinstance(cache, ResilientCache)
    assert await cache.set("k", b"before", 60)
    assert await cache.get("k") == b"before"
    assert (await cache.hit("rate", 100, 60)).degraded is False

    redis_server.stop()
    assert await cache.get("k") is None
    assert await cache.set("k", b"during", 60) is False
    assert (await cache.hit("rate", 100, 60)).degraded
    assert cache.status == "disconnected"
    with pytest.raises(CacheUnavailable):
        await cache.ping()

    redis_server.start()  # same port, empty data
    await anyio.sleep(0.3)
    assert await cache.ping() >= 0
    assert cache.status == "connected"
    assert await cache.set("k", b"after", 60) is True
    assert await cache.get("k") == b"after"
    decision = await cache.hit("rate", 100, 60)
    assert decision.allowed and not decision.degraded
    token = await cache.begin_fill("x")
    assert token is not None
    assert await cache.fill("x", b"row", 60, token) is True
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1
    assert sum("is back after" in m for m in messages) == 1
    await cache.close()


async def test_a_token_taken_before_an_outage_cannot_fill_after_it(
    redis_server: Any,
) -> None:
    """The invalidation that fenced it may have been lost while Redis was down."""
    cache = create_cache(redis_server.url, retry_interval=0.1)
    token = await cache.begin_fill("image:1")
    assert token is not None
    redis_server.stop()
    await cache.invalidate("image:1")  # lost
    redis_server.start()
    await anyio.sleep(0.2)
    assert await cache.fill("image:1", b"stale", 60, token) is False
    fresh = await cache.begin_fill("image:1")
    assert fresh is not None
    assert await cache.fill("image:1", b"fresh", 60, fresh) is True
    await cache.close()


async def test_calls_during_an_outage_do_not_wait_on_the_network(
    redis_server: Any,
) -> None:
    cache = create_cache(redis_server.url, retry_interval=5)
    assert await cache.set("k", b"v", 60)
    redis_server.stop()
    await cache.get("k")  # notices the outage
    start = time.monotonic()
    for _ in range(100):
        assert await cache.get("k") is None
    assert time.monotonic() - start < 0.1
    await cache.close()


@pytest.mark.redis
async def test_a_fence_survives_between_processes(redis_url: str, redis_prefix: str) -> None:
    """Two app processes are two clients: one's invalidation fences the other's refill."""
    reader = create_cache(redis_url, prefix=redis_prefix)
    writer = create_cache(redis_url, prefix=redis_prefix)
    token = await reader.begin_fill("image:1")
    assert token is not None
    await writer.invalidate("image:1")
    assert await reader.fill("image:1", b"stale", 60, token) is False
    await reader.close()
    await writer.close()


@pytest.mark.redis
async def test_old_tokens_are_refused(redis_url: str, redis_prefix: str) -> None:
    cache = RedisCache(redis_url, prefix=redis_prefix, fence_ttl=0.2)
    token = await cache.begin_fill("k")
    assert token is not None
    await anyio.sleep(0.15)
    assert await cache.fill("k", b"v", 60, token) is False
    await cache.close()


@pytest.mark.redis
async def test_counters_are_shared_between_clients(redis_url: str, redis_prefix: str) -> None:
    a = create_cache(redis_url, prefix=redis_prefix)
    b = create_cache(redis_url, prefix=redis_prefix)
    decisions = []

    async def hit(cache: ResilientCache) -> None:
        decisions.append(await cache.hit("shared", 10, 60))

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(hit, a if i % 2 else b)
    assert sum(d.allowed for d in decisions) == 10
    await a.close()
    await b.close()
