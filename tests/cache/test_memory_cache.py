"""The in-process backend: LRU bounds, TTL on an injected clock, fences, the sliding window."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chitram_core.cache.memory import MemoryCache, create_cache

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_max_entries_comes_from_the_url() -> None:
    assert create_cache("memory://?max_entries=7").max_entries == 7


def test_unknown_options_are_refused() -> None:
    with pytest.raises(TypeError, match="colour"):
        create_cache("memory://", colour="blue")


async def test_the_least_recently_used_entry_is_evicted_first() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.set("a", b"a", 60)
    await cache.set("b", b"b", 60)
    assert await cache.get("a") == b"a"  # "b" is now the least recently used
    await cache.set("c", b"c", 60)
    assert await cache.get("b") is None
    assert await cache.get("a") == b"a"
    assert await cache.get("c") == b"c"
    assert len(cache) == 2


async def test_entries_expire_on_the_injected_clock() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.set("k", b"v", 10)
    clock.advance(9.9)
    assert await cache.get("k") == b"v"
    clock.advance(0.1)
    assert await cache.get("k") is None


async def test_get_local_answers_what_get_answers_without_waiting() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    assert cache.get_local("k") is None
    await cache.set("k", b"v", 10)
    assert cache.get_local("k") == await cache.get("k") == b"v"
    await cache.invalidate("k")
    assert cache.get_local("k") is None
    await cache.set("k", b"w", 10)
    clock.advance(11)
    assert cache.get_local("k") is None


async def test_a_fence_forgotten_for_space_still_refuses_older_tokens() -> None:
    cache = MemoryCache(max_entries=2)
    token = await cache.begin_fill("victim")
    assert token is not None
    await cache.invalidate("victim")
    for i in range(5):  # push the victim's fence out of the bounded fence table
        await cache.invalidate(f"other-{i}")
    assert await cache.fill("victim", b"stale", 60, token) is False
    fresh = await cache.begin_fill("victim")
    assert fresh is not None
    assert await cache.fill("victim", b"fresh", 60, fresh) is True


async def test_an_expired_fence_still_refuses_older_tokens() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock, fence_ttl=5)
    token = await cache.begin_fill("k")
    assert token is not None
    await cache.invalidate("k")
    clock.advance(60)
    assert await cache.fill("k", b"stale", 60, token) is False


async def test_a_refused_hit_reports_when_the_oldest_counted_hit_leaves() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.hit("k", 2, 60)
    clock.advance(20.5)
    await cache.hit("k", 2, 60)
    refused = await cache.hit("k", 2, 60)
    assert not refused.allowed
    assert refused.retry_after == 40  # the first hit leaves at 60 s, 39.5 s from now
    assert refused.reset_after == pytest.approx(60)
    clock.advance(39.5)
    assert (await cache.hit("k", 2, 60)).allowed


async def test_idle_windows_are_swept() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock, max_entries=10)
    for i in range(50):
        await cache.hit(f"k{i}", 1, 1)
    clock.advance(2)
    await cache.hit("last", 1, 1)
    assert len(cache._windows) <= 11


def reference_window(events: list[tuple[float, int]], limit: int, period: float) -> list[bool]:
    """The specification: an event is allowed when fewer than ``limit`` allowed events of its
    key happened in the last ``period`` seconds (an event exactly ``period`` ago has left)."""
    allowed: dict[int, list[float]] = {}
    out = []
    for now, key in events:
        recent = [t for t in allowed.get(key, []) if t > now - period]
        ok = len(recent) < limit
        if ok:
            recent.append(now)
        allowed[key] = recent
        out.append(ok)
    return out


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=5),
    period=st.integers(min_value=1, max_value=20),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=8), st.integers(min_value=0, max_value=2)),
        max_size=60,
    ),
)
def test_the_sliding_window_matches_the_reference_model(
    limit: int, period: int, steps: list[tuple[int, int]]
) -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    events: list[tuple[float, int]] = []
    decisions = []

    async def run() -> None:
        for gap, key in steps:
            clock.advance(gap / 2)  # half-second steps hit the window's edge exactly
            events.append((clock.now, key))
            decision = await cache.hit(f"k{key}", limit, period)
            assert 0 <= decision.remaining <= limit - 1 or not decision.allowed
            if not decision.allowed:
                assert 1 <= decision.retry_after <= period
            decisions.append(decision.allowed)

    anyio.run(run)
    assert decisions == reference_window(events, limit, period)
