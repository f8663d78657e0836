"""The conformance suite for ``chitram.cache`` plugins: subclass it and provide a ``cache`` fixture.

::

    import pytest
    from chitram_core.testing.cache_conformance import CacheConformance

    class TestMyCache(CacheConformance):
        @pytest.fixture
        async def cache(self):
            cache = my_plugin.create_cache("mycache://localhost/?prefix=test-123:")
            yield cache
            await cache.close()

The suite is split as the protocol is: :class:`KeyValueConformance`, :class:`FencedCacheConformance`
and :class:`RateCounterConformance` test one part each (a component that implements only
:class:`~chitram_core.cache.base.RateCounter`, say, subclasses that one), and
:class:`CacheConformance` is all of them, for a full ``chitram.cache`` plugin.

Each test uses fresh random keys, so a shared server is fine; give each test run its own key
prefix and remove only those keys afterwards. Register assertion rewriting for nicer failures
with ``pytest.register_assert_rewrite("chitram_core.testing.cache_conformance")`` in a conftest.

The suite sleeps for short real intervals (TTL expiry, window sliding) and so takes a few seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest

from chitram_core.cache.base import (
    Cache,
    CacheService,
    FencedCache,
    FillToken,
    KeyValueCache,
    RateCounter,
    RateDecision,
    get_local,
)


def _key(label: str) -> str:
    return f"conformance:{label}:{uuid.uuid4().hex}"


class CacheServiceConformance:
    """What every part shares: a name, a status and a ping; a subclass overrides :meth:`cache`."""

    pytestmark = [pytest.mark.anyio]

    ttl = 60.0
    short_ttl = 0.3
    """Seconds; expiry tests wait a little longer than this."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def cache(self) -> AsyncIterator[CacheService]:
        raise NotImplementedError("a conformance subclass must override the `cache` fixture")
        yield  # pragma: no cover

    async def test_is_a_connected_cache_service(self, cache: CacheService) -> None:
        assert isinstance(cache, CacheService)
        assert cache.name
        assert cache.status == "connected"

    # Lifecycle ----------------------------------------------------------------------------

    async def test_ping_reports_latency_in_milliseconds(self, cache: CacheService) -> None:
        latency = await cache.ping()
        assert isinstance(latency, float)
        assert 0 <= latency < 5000


class KeyValueConformance(CacheServiceConformance):
    """:class:`~chitram_core.cache.base.KeyValueCache`: bytes by key, with a TTL."""

    # Values -------------------------------------------------------------------------------

    async def test_is_a_key_value_cache(self, cache: KeyValueCache) -> None:
        assert isinstance(cache, KeyValueCache)

    async def test_get_of_a_missing_key_is_none(self, cache: KeyValueCache) -> None:
        assert await cache.get(_key("missing")) is None

    async def test_set_then_get_returns_the_bytes(self, cache: KeyValueCache) -> None:
        key = _key("set")
        assert await cache.set(key, b"value", self.ttl) is True
        assert await cache.get(key) == b"value"

    async def test_values_are_binary_safe(self, cache: KeyValueCache) -> None:
        key = _key("binary")
        value = bytes(range(256)) * 4
        await cache.set(key, value, self.ttl)
        assert await cache.get(key) == value

    async def test_get_local_never_answers_what_get_would_not(self, cache: KeyValueCache) -> None:
        """The optional ``get_local`` (no I/O): None, or exactly what ``get`` answers."""
        key = _key("local")
        assert get_local(cache, key) is None
        await cache.set(key, b"one", self.ttl)
        assert get_local(cache, key) in (None, await cache.get(key))
        await cache.set(key, b"two", self.ttl)
        assert get_local(cache, key) in (None, await cache.get(key))
        await cache.delete(key)
        assert get_local(cache, key) is None

    async def test_set_overwrites(self, cache: KeyValueCache) -> None:
        key = _key("overwrite")
        await cache.set(key, b"one", self.ttl)
        await cache.set(key, b"two", self.ttl)
        assert await cache.get(key) == b"two"

    async def test_entries_expire_after_their_ttl(self, cache: KeyValueCache) -> None:
        key = _key("ttl")
        await cache.set(key, b"short", self.short_ttl)
        assert await cache.get(key) == b"short"
        await anyio.sleep(self.short_ttl + 0.3)
        assert await cache.get(key) is None

    async def test_delete_removes_the_entry(self, cache: KeyValueCache) -> None:
        key = _key("delete")
        await cache.set(key, b"value", self.ttl)
        await cache.delete(key)
        assert await cache.get(key) is None

    async def test_delete_of_a_missing_key_is_not_an_error(self, cache: KeyValueCache) -> None:
        await cache.delete(_key("never-set"))

    async def test_keys_are_independent(self, cache: KeyValueCache) -> None:
        a, b = _key("a"), _key("b")
        await cache.set(a, b"a", self.ttl)
        await cache.set(b, b"b", self.ttl)
        await cache.delete(a)
        assert await cache.get(b) == b"b"


class FencedCacheConformance(KeyValueConformance):
    """:class:`~chitram_core.cache.base.FencedCache`: invalidations fence out stale refills."""

    async def test_is_a_fenced_cache(self, cache: FencedCache) -> None:
        assert isinstance(cache, FencedCache)

    # Fences -------------------------------------------------------------------------------

    async def test_fill_after_a_miss_stores_the_value(self, cache: FencedCache) -> None:
        key = _key("fill")
        token = await cache.begin_fill(key)
        assert isinstance(token, FillToken)
        assert await cache.fill(key, b"row", self.ttl, token) is True
        assert await cache.get(key) == b"row"

    async def test_invalidate_removes_the_entry(self, cache: FencedCache) -> None:
        key = _key("invalidate")
        await cache.set(key, b"row", self.ttl)
        await cache.invalidate(key)
        assert await cache.get(key) is None

    async def test_invalidate_fences_a_refill_with_an_older_token(self, cache: FencedCache) -> None:
        """The stale-refill race: a reader missed, the row was deleted, the reader fills."""
        key = _key("race")
        token = await cache.begin_fill(key)
        assert token is not None
        await cache.invalidate(key)
        assert await cache.fill(key, b"deleted row", self.ttl, token) is False
        assert await cache.get(key) is None

    async def test_every_reader_that_missed_before_invalidate_is_fenced(
        self, cache: FencedCache
    ) -> None:
        key = _key("readers")
        tokens = [await cache.begin_fill(key) for _ in range(20)]
        await cache.invalidate(key)
        results: list[bool] = []

        async def fill(token: FillToken | None) -> None:
            assert token is not None
            results.append(await cache.fill(key, b"stale", self.ttl, token))

        async with anyio.create_task_group() as tg:
            for token in tokens:
                tg.start_soon(fill, token)
        assert results == [False] * 20
        assert await cache.get(key) is None

    async def test_a_token_taken_after_invalidate_fills(self, cache: FencedCache) -> None:
        key = _key("after")
        await cache.invalidate(key)
        token = await cache.begin_fill(key)
        assert token is not None
        assert await cache.fill(key, b"fresh", self.ttl, token) is True
        assert await cache.get(key) == b"fresh"

    async def test_a_second_invalidate_fences_a_token_taken_between(
        self, cache: FencedCache
    ) -> None:
        key = _key("twice")
        await cache.invalidate(key)
        token = await cache.begin_fill(key)
        assert token is not None
        await cache.invalidate(key)
        assert await cache.fill(key, b"stale", self.ttl, token) is False

    async def test_fences_are_per_key(self, cache: FencedCache) -> None:
        key, other = _key("mine"), _key("other")
        token = await cache.begin_fill(key)
        assert token is not None
        await cache.invalidate(other)
        assert await cache.fill(key, b"row", self.ttl, token) is True

    async def test_a_token_only_fills_its_own_key(self, cache: FencedCache) -> None:
        key, other = _key("mine"), _key("other")
        token = await cache.begin_fill(key)
        assert token is not None
        assert await cache.fill(other, b"row", self.ttl, token) is False
        assert await cache.get(other) is None


class RateCounterConformance(CacheServiceConformance):
    """:class:`~chitram_core.cache.base.RateCounter`: exact sliding-window counts."""

    async def test_is_a_rate_counter(self, cache: RateCounter) -> None:
        assert isinstance(cache, RateCounter)

    # Counters -----------------------------------------------------------------------------

    async def test_hits_are_allowed_up_to_the_limit(self, cache: RateCounter) -> None:
        key = _key("hits")
        decisions = [await cache.hit(key, 3, 60) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0]
        assert all(d.limit == 3 for d in decisions)
        assert all(not d.degraded for d in decisions)

    async def test_a_refused_hit_says_when_to_retry(self, cache: RateCounter) -> None:
        key = _key("retry")
        await cache.hit(key, 1, 30)
        refused = await cache.hit(key, 1, 30)
        assert isinstance(refused, RateDecision)
        assert not refused.allowed
        assert 1 <= refused.retry_after <= 30
        assert 0 < refused.reset_after <= 30

    async def test_an_allowed_hit_has_no_retry_after(self, cache: RateCounter) -> None:
        decision = await cache.hit(_key("allowed"), 5, 60)
        assert decision.allowed
        assert decision.retry_after == 0
        assert 0 < decision.reset_after <= 60

    async def test_hits_are_exact_under_concurrency(self, cache: RateCounter) -> None:
        key = _key("concurrent")
        decisions: list[RateDecision] = []

        async def one() -> None:
            decisions.append(await cache.hit(key, 10, 60))

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(one)
        assert sum(d.allowed for d in decisions) == 10
        assert sorted(d.remaining for d in decisions if d.allowed) == list(range(10))

    async def test_refused_hits_do_not_count(self, cache: RateCounter) -> None:
        key = _key("refused")
        for _ in range(5):
            await cache.hit(key, 1, 0.5)
        await anyio.sleep(0.7)
        assert (await cache.hit(key, 1, 0.5)).allowed

    async def test_the_window_slides(self, cache: RateCounter) -> None:
        key = _key("slide")
        assert (await cache.hit(key, 2, 1.0)).allowed
        await anyio.sleep(0.6)
        assert (await cache.hit(key, 2, 1.0)).allowed
        assert not (await cache.hit(key, 2, 1.0)).allowed
        await anyio.sleep(0.6)  # the first hit has left the window, the second has not
        assert (await cache.hit(key, 2, 1.0)).allowed
        assert not (await cache.hit(key, 2, 1.0)).allowed

    async def test_counters_are_per_key(self, cache: RateCounter) -> None:
        a, b = _key("a"), _key("b")
        await cache.hit(a, 1, 60)
        assert not (await cache.hit(a, 1, 60)).allowed
        assert (await cache.hit(b, 1, 60)).allowed


class CacheConformance(FencedCacheConformance, RateCounterConformance):
    """Behaviour shared by every ``chitram.cache`` backend: all of the parts above."""

    async def test_is_a_cache(self, cache: Cache) -> None:
        assert isinstance(cache, Cache)
        assert cache.name
        assert cache.status == "connected"
