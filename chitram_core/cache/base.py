"""The Cache protocol: what a ``chitram.cache`` plugin implements, and the fail-open wrapper.

One backend serves two jobs: cache-aside for image metadata and the rate limiter's counters.
The protocol is split by job (:class:`KeyValueCache`, :class:`FencedCache`, :class:`RateCounter`,
all :class:`CacheService`); :class:`Cache` is the composite a plugin provides.

Cache-aside without the stale-refill race works with fences. A reader that missed takes a
:class:`FillToken` with :meth:`FencedCache.begin_fill` *before* it reads the database, and puts the
row back with :meth:`FencedCache.fill`, which stores nothing if :meth:`FencedCache.invalidate` ran
for that key since the token was taken. A writer commits to the database first and invalidates
second, so a reader that saw the old row can never put it back after the writer is done.

Backends that talk to a network should be wrapped in :class:`ResilientCache`, which turns an
outage into misses and allowed hits (or refused hits, when configured to fail closed), logs once
per outage and reports ``"connected"`` / ``"disconnected"`` for health.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import attrs

from chitram_core.errors import ServiceUnavailable

log = logging.getLogger(__name__)

DEFAULT_FENCE_TTL = 60.0
"""How long an invalidation fences its key against refills, in seconds.

A token older than this is refused by :meth:`FencedCache.fill`, so a fence never has to outlive it.
"""


class CacheUnavailable(ServiceUnavailable):
    """The cache backend cannot be reached; raised by ``ping`` and by unwrapped backends."""

    default_message = "The cache backend is unavailable"


@attrs.frozen(kw_only=True)
class FillToken:
    """Proof of when a reader missed ``key``; opaque to callers.

    ``fence`` is the backend's fence marker at that moment; ``issued_at`` is a monotonic time in
    seconds in the process that took it, used to refuse tokens older than the fence lifetime.
    """

    key: str
    fence: str
    issued_at: float

    def age(self) -> float:
        return time.monotonic() - self.issued_at


@attrs.frozen(kw_only=True)
class RateDecision:
    """The outcome of one rate-limited event.

    ``retry_after`` is whole seconds until the next event can be allowed (0 when allowed, at least
    1 when refused). ``reset_after`` is seconds until the window holds no counted events, i.e.
    the full quota is back. ``degraded`` says the backend was unreachable and the decision is the
    configured fail-open (allowed) or fail-closed (refused) default, not a count.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: int
    reset_after: float
    degraded: bool = False

    @classmethod
    def fallback(cls, limit: int, period: float, *, allow: bool) -> RateDecision:
        """The decision to use when the counter cannot be reached."""
        if allow:
            return cls(
                allowed=True,
                limit=limit,
                remaining=max(limit - 1, 0),
                retry_after=0,
                reset_after=0.0,
                degraded=True,
            )
        return cls(
            allowed=False,
            limit=limit,
            remaining=0,
            retry_after=1,
            reset_after=float(period),
            degraded=True,
        )


def retry_seconds(seconds: float) -> int:
    """A Retry-After value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds - 1e-9))


@runtime_checkable
class CacheService(Protocol):
    """What every cache backend has, whatever it stores: a name, health and a lifecycle."""

    name: str
    """The plugin name (e.g. ``memory``, ``redis``)."""
    url: str
    """The URL the cache was opened with (credentials left out)."""

    @property
    def status(self) -> str:
        """``"connected"`` or ``"disconnected"``: the last known state, for health."""
        ...

    async def ping(self) -> float:
        """Round-trip latency in milliseconds; raises :class:`CacheUnavailable` when down."""
        ...

    async def close(self) -> None:
        """Release connections; the cache is not used after it."""
        ...


@runtime_checkable
class KeyValueCache(CacheService, Protocol):
    """Opaque bytes by key, each with a TTL in seconds."""

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or None when absent, expired or unavailable."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        """Store unconditionally; False when the backend could not store it."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...


@runtime_checkable
class FencedCache(KeyValueCache, Protocol):
    """A key/value cache whose invalidations fence out stale refills (cache-aside, see above)."""

    async def begin_fill(self, key: str) -> FillToken | None:
        """Take a token before reading the source of truth on a miss; None if unavailable."""
        ...

    async def fill(self, key: str, value: bytes, ttl: float, token: FillToken) -> bool:
        """Store only if ``key`` was not invalidated since ``token`` was taken."""
        ...

    async def invalidate(self, key: str) -> None:
        """Delete ``key`` and fence it, so that fills with older tokens are refused."""
        ...


def get_local(cache: KeyValueCache, key: str) -> bytes | None:
    """``key``'s value when ``cache`` holds it in this process and can answer without I/O or
    waiting (the memory cache; Redis's near cache while its subscription is alive), else None.

    A cache offers this with a synchronous ``get_local(key)`` method that answers what its
    ``get`` would; it is optional (a plugin without it is simply always asked with ``get``). It
    lets a server answer a warm read without scheduling a task (``chitram serve``'s protocol).
    """
    local = getattr(cache, "get_local", None)
    if local is None:
        return None
    value: bytes | None = local(key)
    return value


@runtime_checkable
class RateCounter(CacheService, Protocol):
    """An atomic sliding-window event counter: what the rate limiter needs."""

    async def hit(self, key: str, limit: int, period: float) -> RateDecision:
        """Count one event against ``limit`` per sliding ``period``; refused events don't count."""
        ...


@runtime_checkable
class Cache(FencedCache, RateCounter, Protocol):
    """A backend that does it all: fenced key/value cache-aside and rate counters.

    What a ``chitram.cache`` plugin's factory returns, since one URL serves both jobs.
    ``ttl`` and ``period`` are seconds. Values are opaque bytes. Every method may be called
    concurrently from many tasks (and, for shared backends, many processes). Callers ask for
    the narrowest part they use: :class:`~chitram_core.cache.ImageCache` a
    :class:`FencedCache`, the rate limiter a :class:`RateCounter`, health a
    :class:`CacheService`.
    """


class ResilientCache(Cache):
    """Wraps a backend that raises on outages so that callers never see the outage.

    While the backend is down every call degrades at once (get → None, set/fill → False, hit →
    the fail-open or fail-closed default) instead of waiting on a dead socket; after
    ``retry_interval`` seconds the next call tries the backend again, which is how it reconnects
    by itself. ``ping`` always tries, and raises, so health sees the truth.
    """

    def __init__(
        self,
        inner: Cache,
        *,
        fail_open: bool = True,
        retry_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.url = inner.url
        self.fail_open = fail_open
        self.retry_interval = retry_interval
        self._clock = clock
        self._down_since: float | None = None
        self._next_attempt = 0.0
        # When the last outage began, on the clock FillToken.issued_at uses.
        self._outage_began = float("-inf")
        self.outages = 0

    @property
    def status(self) -> str:
        return "disconnected" if self._down_since is not None else "connected"

    @property
    def connected(self) -> bool:
        return self._down_since is None

    def _skip(self) -> bool:
        return self._down_since is not None and self._clock() < self._next_attempt

    def _failed(self, exc: BaseException) -> None:
        now = self._clock()
        self._next_attempt = now + self.retry_interval
        if self._down_since is None:
            self._down_since = now
            self._outage_began = time.monotonic()
            self.outages += 1
            mode = "failing open" if self.fail_open else "failing closed for rate limits"
            log.warning(
                "Cache %s (%s) is unavailable, %s until it is back: %s: %s",
                self.name,
                self.url,
                mode,
                type(exc).__name__,
                exc,
            )

    def _succeeded(self) -> None:
        if self._down_since is not None:
            log.warning(
                "Cache %s (%s) is back after %.1f s",
                self.name,
                self.url,
                self._clock() - self._down_since,
            )
            self._down_since = None

    def get_local(self, key: str) -> bytes | None:
        """The backend's :func:`get_local` (``None`` while the backend is down)."""
        if self._down_since is not None:
            return None
        return get_local(self.inner, key)

    async def get(self, key: str) -> bytes | None:
        if self._skip():
            return None
        try:
            value = await self.inner.get(key)
        except Exception as exc:  # any backend failure is an outage here; logged in _failed
            self._failed(exc)
            return None
        self._succeeded()
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        if self._skip():
            return False
        try:
            stored = await self.inner.set(key, value, ttl)
        except Exception as exc:
            self._failed(exc)
            return False
        self._succeeded()
        return stored

    async def delete(self, key: str) -> None:
        if self._skip():
            return
        try:
            await self.inner.delete(key)
        except Exception as exc:
            self._failed(exc)
            return
        self._succeeded()

    async def begin_fill(self, key: str) -> FillToken | None:
        if self._skip():
            return None
        try:
            token = await self.inner.begin_fill(key)
        except Exception as exc:
            self._failed(exc)
            return None
        self._succeeded()
        return token

    async def fill(self, key: str, value: bytes, ttl: float, token: FillToken) -> bool:
        # An invalidation may have been lost in an outage that began after the token was taken.
        if self._skip() or token.issued_at <= self._outage_began:
            return False
        try:
            stored = await self.inner.fill(key, value, ttl, token)
        except Exception as exc:
            self._failed(exc)
            return False
        self._succeeded()
        return stored

    async def invalidate(self, key: str) -> None:
        # An invalidation lost to an outage is bounded by the entry's TTL; fills with tokens
        # from before the outage are refused, and none are issued while it lasts.
        if self._skip():
            return
        try:
            await self.inner.invalidate(key)
        except Exception as exc:
            self._failed(exc)
            return
        self._succeeded()

    async def hit(self, key: str, limit: int, period: float) -> RateDecision:
        if self._skip():
            return RateDecision.fallback(limit, period, allow=self.fail_open)
        try:
            decision = await self.inner.hit(key, limit, period)
        except Exception as exc:
            self._failed(exc)
            return RateDecision.fallback(limit, period, allow=self.fail_open)
        self._succeeded()
        return decision

    async def ping(self) -> float:
        try:
            latency = await self.inner.ping()
        except Exception as exc:
            self._failed(exc)
            if isinstance(exc, CacheUnavailable):
                raise
            raise CacheUnavailable(f"{self.name} cache unreachable: {type(exc).__name__}") from exc
        self._succeeded()
        return latency

    async def close(self) -> None:
        await self.inner.close()
