"""The Redis near cache (L1): served without a round trip, dropped by pushed invalidations.

Two cache instances sharing one Redis stand for two app processes. Every test uses its own key
prefix (so its own invalidation channel) and kills only its own subscriber connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from chitram_core.cache import Cache
from chitram_core.cache.base import ResilientCache
from chitram_core.cache.redis import RedisCache, create_cache
from chitram_core.testing.cache_conformance import CacheConformance

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


def inner(cache: ResilientCache) -> RedisCache:
    assert isinstance(cache.inner, RedisCache)
    return cache.inner


async def until(condition: Callable[[], bool], within: float = 2.0) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took, fails after ``within``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within} s")
        await anyio.sleep(0.005)
    return time.monotonic() - start


async def active(cache: ResilientCache) -> RedisCache:
    """Start the subscriber (on the first get) and wait until the near cache is in use."""
    backend = inner(cache)
    await cache.get("warm-up")
    await until(lambda: backend.near_active)
    return backend


class CommandCounter:
    """Counts the commands a client sends (GET, EVALSHA, ...) by wrapping execute_command."""

    def __init__(self, client: Redis) -> None:
        self.count = 0
        original = client.execute_command

        async def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(*args, **kwargs)

        client.execute_command = counting  # type: ignore[method-assign]


@pytest.fixture
async def pair(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[ResilientCache, ...]]:
    a = create_cache(redis_url, prefix=redis_prefix, near_cache=True)
    b = create_cache(redis_url, prefix=redis_prefix, near_cache=True)
    yield a, b
    await a.close()
    await b.close()


async def kill_subscriber(redis_url: str, backend: RedisCache) -> None:
    admin = Redis.from_url(redis_url)
    try:
        clients = await admin.client_list(_type="pubsub")
        ids = [c["id"] for c in clients if c.get("name") == backend.subscriber_name]
        assert len(ids) == 1, clients
        await admin.client_kill_filter(_id=ids[0])
    finally:
        await admin.aclose()


def test_url_options() -> None:
    on = inner(create_cache("redis://127.0.0.1:1/0?near_ttl=2&near_max_entries=50"))
    assert on.near is not None
    assert on.near.ttl == 2.0
    assert on.near.max_entries == 50
    off = inner(create_cache("redis://127.0.0.1:1/0?near_cache=0"))
    assert off.near is None
    with pytest.raises(ValueError):
        create_cache("redis://127.0.0.1:1/0?near_ttl=0")


async def test_a_warm_read_costs_no_round_trip_and_an_invalidation_reaches_the_other_process(
    pair: tuple[ResilientCache, ResilientCache],
) -> None:
    a, b = pair
    backend_b = await active(b)
    counter = CommandCounter(backend_b._client)

    token = await a.begin_fill("image:1")
    assert token is not None
    assert await a.fill("image:1", b"row", 60, token)

    assert await b.get("image:1") == b"row"  # from Redis, kept in B's near cache
    assert counter.count >= 1  # (the first EVALSHA also loads the script)
    reads = counter.count
    hits = backend_b.near.hits if backend_b.near else 0
    for _ in range(5):
        assert await b.get("image:1") == b"row"
    assert counter.count == reads  # no Redis command at all
    assert backend_b.near is not None
    assert backend_b.near.hits == hits + 5

    await a.invalidate("image:1")
    seen: list[bytes | None] = []

    async def poll() -> bool:
        value = await b.get("image:1")
        seen.append(value)
        return value is None

    start = time.monotonic()
    while not await poll():
        assert time.monotonic() - start < 1.0, "B still serves the row 1 s after the delete"
        await anyio.sleep(0.002)
    # Once the invalidation was delivered, the old row never comes back.
    for _ in range(50):
        assert await b.get("image:1") is None
    assert "image:1" not in backend_b.near.entries
    assert all(value in (b"row", None) for value in seen)


async def test_a_fill_fenced_in_redis_stores_nothing_in_any_near_cache(
    pair: tuple[ResilientCache, ResilientCache],
) -> None:
    a, b = pair
    backend_b = await active(b)
    token = await b.begin_fill("image:2")
    assert token is not None
    await a.invalidate("image:2")
    assert await b.fill("image:2", b"deleted row", 60, token) is False
    assert backend_b.near is not None
    assert "image:2" not in backend_b.near.entries
    assert await b.get("image:2") is None


async def test_a_fill_after_an_invalidation_was_heard_is_kept_out_of_the_near_cache(
    pair: tuple[ResilientCache, ResilientCache],
) -> None:
    """Redis accepted the fill, but an invalidation of the key arrived since the token."""
    _, b = pair
    backend_b = await active(b)
    assert backend_b.near is not None
    token = await b.begin_fill("image:3")
    assert token is not None
    backend_b.near.drop("image:3")  # as the subscriber does when it hears the key
    assert await b.fill("image:3", b"row", 60, token) is True  # Redis fence untouched
    assert "image:3" not in backend_b.near.entries

    token = await b.begin_fill("image:3")
    assert token is not None
    assert await b.fill("image:3", b"row", 60, token) is True
    assert backend_b.near.entries["image:3"][0] == b"row"


async def test_a_token_from_before_the_subscription_does_not_fill_the_near_cache(
    redis_url: str, redis_prefix: str
) -> None:
    cache = create_cache(redis_url, prefix=redis_prefix, near_cache=True)
    token = await cache.begin_fill("image:4")
    assert token is not None
    backend = await active(cache)
    assert await cache.fill("image:4", b"row", 60, token) is True
    assert backend.near is not None
    assert "image:4" not in backend.near.entries
    await cache.close()


async def test_a_killed_subscriber_bypasses_and_clears_the_near_cache_until_resubscribed(
    pair: tuple[ResilientCache, ResilientCache], redis_url: str
) -> None:
    a, b = pair
    backend_b = await active(b)
    near = backend_b.near
    assert near is not None
    await a.set("image:5", b"v1", 60)
    await anyio.sleep(0.2)  # B hears A's set (which drops nothing yet)
    assert await b.get("image:5") == b"v1"
    assert await b.get("image:5") == b"v1"
    assert "image:5" in near.entries

    await kill_subscriber(redis_url, backend_b)
    await until(lambda: not backend_b.near_active, within=1.0)
    assert near.entries == {}

    # While B hears nothing, A's invalidation still reaches B's readers: they go to Redis.
    counter = CommandCounter(backend_b._client)
    await a.invalidate("image:5")
    assert await b.get("image:5") is None
    assert counter.count == 1
    token = await b.begin_fill("image:5")
    assert token is not None
    assert await b.fill("image:5", b"v2", 60, token)
    assert near.entries == {}  # no near cache without a subscription

    # It resubscribes by itself, starting empty, and serves from memory again.
    await until(lambda: backend_b.near_active, within=3.0)
    assert near.entries == {}
    assert await b.get("image:5") == b"v2"
    before = counter.count
    assert await b.get("image:5") == b"v2"
    assert counter.count == before

    await a.invalidate("image:5")
    await until(lambda: "image:5" not in near.entries, within=1.0)
    assert await b.get("image:5") is None


async def test_get_local_answers_only_what_the_trusted_near_cache_holds(
    pair: tuple[ResilientCache, ResilientCache], redis_url: str
) -> None:
    a, b = pair
    backend_b = await active(b)
    await a.set("image:7", b"v1", 60)
    await anyio.sleep(0.2)  # B hears A's set (which drops nothing yet)
    assert b.get_local("image:7") is None  # in Redis only: answering needs a round trip
    assert await b.get("image:7") == b"v1"
    assert b.get_local("image:7") == b"v1"

    await a.invalidate("image:7")
    await until(lambda: b.get_local("image:7") is None, within=1.0)

    await a.set("image:7", b"v2", 60)
    await anyio.sleep(0.2)
    assert await b.get("image:7") == b"v2"
    assert b.get_local("image:7") == b"v2"
    await kill_subscriber(redis_url, backend_b)
    await until(lambda: not backend_b.near_active, within=1.0)
    assert b.get_local("image:7") is None  # not trusted while it hears nothing


async def test_entries_are_bounded_and_short_lived(redis_url: str, redis_prefix: str) -> None:
    cache = create_cache(redis_url, prefix=redis_prefix, near_max_entries=3, near_ttl=0.3)
    backend = await active(cache)
    assert backend.near is not None
    for i in range(6):
        await cache.set(f"k{i}", b"v", 60)
    await anyio.sleep(0.2)  # our own sets come back on the channel
    for i in range(6):
        assert await cache.get(f"k{i}") == b"v"
    assert list(backend.near.entries) == ["k3", "k4", "k5"]
    await anyio.sleep(0.4)
    counter = CommandCounter(backend._client)
    assert await cache.get("k5") == b"v"  # expired from the near cache, read again
    assert counter.count == 1
    await cache.close()


async def test_close_cancels_the_subscriber_and_closes_its_connection(
    redis_url: str, redis_prefix: str
) -> None:
    cache = create_cache(redis_url, prefix=redis_prefix)
    backend = await active(cache)
    task = backend._subscriber
    assert task is not None and not task.done()
    await cache.close()
    assert task.done()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "chitram-near-cache"]
    admin = Redis.from_url(redis_url)
    try:

        async def gone() -> bool:
            clients = await admin.client_list(_type="pubsub")
            return not any(c.get("name") == backend.subscriber_name for c in clients)

        start = time.monotonic()
        while not await gone():
            assert time.monotonic() - start < 1.0
            await anyio.sleep(0.02)
    finally:
        await admin.aclose()
    assert not backend.near_active


async def test_an_instance_without_near_cache_still_publishes(
    redis_url: str, redis_prefix: str
) -> None:
    plain = create_cache(redis_url, prefix=redis_prefix, near_cache=False)
    near = create_cache(redis_url, prefix=redis_prefix)
    backend = await active(near)
    assert backend.near is not None
    await plain.set("image:6", b"row", 60)
    await until(lambda: "image:6" in backend.near._dropped)  # type: ignore[union-attr]
    assert await near.get("image:6") == b"row"
    assert "image:6" in backend.near.entries
    await plain.delete("image:6")
    await until(lambda: "image:6" not in backend.near.entries, within=1.0)  # type: ignore[union-attr]
    assert await near.get("image:6") is None
    await plain.close()
    await near.close()


class TestRedisNearCacheConformance(CacheConformance):
    """The whole conformance suite, with the near cache in use from the first call."""

    @pytest.fixture
    async def cache(self, redis_url: str, redis_prefix: str) -> AsyncIterator[Cache]:
        cache = create_cache(redis_url, prefix=redis_prefix, near_cache=True)
        await active(cache)
        yield cache
        await cache.close()
