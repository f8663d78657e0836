"""The in-process cache: LRU + TTL entries, fences and sliding-window counters.

The default backend (``memory://``, or ``memory://?max_entries=10000``). It is exact for one
process; several app processes each get their own, so scale-out deployments use Redis.

Every operation runs synchronously under one lock, so it is atomic even when called from worker
threads; nothing awaits while holding it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chitram_core.cache.base import (
    DEFAULT_FENCE_TTL,
    Cache,
    FillToken,
    RateDecision,
    retry_seconds,
)

DEFAULT_MAX_ENTRIES = 10_000


class MemoryCache(Cache):
    """LRU + TTL cache bounded to ``max_entries`` values (and as many fences)."""

    name = "memory"

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        fence_ttl: float = DEFAULT_FENCE_TTL,
        clock: Callable[[], float] = time.monotonic,
        url: str = "memory://",
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be positive, got {max_entries}")
        self.url = url
        self.max_entries = max_entries
        self.fence_ttl = fence_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        # Fences in the order they were set; each is (sequence number, expiry).
        self._fences: OrderedDict[str, tuple[int, float]] = OrderedDict()
        # Tokens at or below the floor are refused: it rises whenever a fence is forgotten.
        self._floor = 0
        self._sequence = 0
        self._windows: dict[str, tuple[float, deque[float]]] = {}
        self._hits_since_sweep = 0

    @property
    def status(self) -> str:
        return "connected"

    @property
    def connected(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        # A cache is a service, not a container: an empty one must not read as "no cache".
        return True

    # Values -------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return self.get_local(key)

    def get_local(self, key: str) -> bytes | None:
        """What :meth:`get` answers: this cache never needs I/O."""
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            value, expires = item
            if self._clock() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        with self._lock:
            self._store(key, value, ttl)
        return True

    async def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _store(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = (bytes(value), self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    # Fences -------------------------------------------------------------------------------

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    def _forget_fences(self) -> None:
        now = self._clock()
        while self._fences:
            key, (seq, expires) = next(iter(self._fences.items()))
            if expires > now and len(self._fences) <= self.max_entries:
                break
            del self._fences[key]
            self._floor = max(self._floor, seq)

    async def begin_fill(self, key: str) -> FillToken | None:
        with self._lock:
            return FillToken(key=key, fence=str(self._next()), issued_at=time.monotonic())

    async def fill(self, key: str, value: bytes, ttl: float, token: FillToken) -> bool:
        with self._lock:
            if token.key != key:
                return False
            try:
                seq = int(token.fence)
            except ValueError:
                return False
            self._forget_fences()
            if seq <= self._floor:
                return False
            fence = self._fences.get(key)
            if fence is not None and fence[0] > seq:
                return False
            self._store(key, value, ttl)
            return True

    async def invalidate(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._fences.pop(key, None)
            self._fences[key] = (self._next(), self._clock() + self.fence_ttl)
            self._forget_fences()

    # Counters -----------------------------------------------------------------------------

    async def hit(self, key: str, limit: int, period: float) -> RateDecision:
        with self._lock:
            now = self._clock()
            window = self._windows.get(key)
            if window is None or window[0] != period:
                window = (period, deque())
                self._windows[key] = window
            events = window[1]
            horizon = now - period
            while events and events[0] <= horizon:
                events.popleft()
            allowed = len(events) < limit
            if allowed:
                events.append(now)
            self._sweep_windows(now)
            remaining = max(limit - len(events), 0)
            # Clamped: (now + period) - now can come out a few ulps above period.
            reset_after = min(max(events[-1] + period - now, 0.0), period) if events else 0.0
            if allowed:
                retry_after = 0
            else:
                # The event that frees a slot is the one `limit` places from the newest.
                freeing = events[len(events) - limit] if len(events) >= limit else now
                retry_after = retry_seconds(freeing + period - now)
            return RateDecision(
                allowed=allowed,
                limit=limit,
                remaining=remaining,
                retry_after=retry_after,
                reset_after=reset_after,
            )

    def _sweep_windows(self, now: float) -> None:
        self._hits_since_sweep += 1
        if self._hits_since_sweep < 1000 and len(self._windows) <= self.max_entries:
            return
        self._hits_since_sweep = 0
        idle = [k for k, (p, ev) in self._windows.items() if not ev or ev[-1] <= now - p]
        for k in idle:
            del self._windows[k]

    # Lifecycle ----------------------------------------------------------------------------

    async def ping(self) -> float:
        start = time.perf_counter()
        with self._lock:
            pass
        return (time.perf_counter() - start) * 1000

    async def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._fences.clear()
            self._windows.clear()


def create_cache(url: str = "memory://", **options: Any) -> MemoryCache:
    """The ``memory`` plugin factory; ``max_entries`` and ``fence_ttl`` from the URL or options."""
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    max_entries = int(options.pop("max_entries", query.get("max_entries", DEFAULT_MAX_ENTRIES)))
    fence_ttl = float(options.pop("fence_ttl", query.get("fence_ttl", DEFAULT_FENCE_TTL)))
    clock = options.pop("clock", time.monotonic)
    options.pop("fail_open", None)
    options.pop("prefix", None)
    if options:
        raise TypeError(f"unknown memory cache options: {', '.join(sorted(options))}")
    return MemoryCache(max_entries=max_entries, fence_ttl=fence_ttl, clock=clock, url=url)
