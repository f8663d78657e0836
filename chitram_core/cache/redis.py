"""The Redis cache: shared by every app process, for scale-out deployments.

``redis://host:6379/0?prefix=chitram:&fail_open=true`` (``rediss://`` for TLS). Our own query
parameters (``prefix``, ``fail_open``, ``fence_ttl``, ``retry_interval``, ``near_cache``,
``near_ttl``, ``near_max_entries``) are taken out of the URL before the rest reaches redis-py.

Fills and counters run as Lua scripts, so each is one atomic step on the server; counters use the
server's clock, so processes with skewed clocks still share one window. :func:`create_cache`
wraps the backend in :class:`~chitram_core.cache.base.ResilientCache`: an outage never reaches a
caller, and redis-py reconnects on the next attempt.

The near cache (L1)
-------------------
With ``near_cache`` on, each :class:`RedisCache` keeps a small in-process copy of the values it
read or filled, so a warm ``get`` costs no network round trip. Every write that changes or removes
a value (``set``, ``delete``, ``invalidate``) publishes the key on ``<prefix>invalidate`` in the
same Lua script, whether or not the writing process has a near cache. A subscriber task, started
on the first ``get``, drops the keys it hears. The near cache is used only while that
subscription is confirmed and alive (a ``PING`` answered within a few seconds): when it drops or
errors, the near cache is cleared and bypassed until a new subscription is confirmed, and cleared
again then, because messages may have been missed in between.

A value enters the near cache only after Redis returned or accepted it, and only if no
invalidation for its key was heard, and no resubscription happened, since the read began (for a
fill: since its token was taken). Any invalidation that Redis runs after that read is published
after it, on a subscription confirmed before it, so it reaches this process and drops the entry.
Entries also expire after ``min(near_ttl, the value's TTL)``, a safety net for anything missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chitram_core.cache.base import (
    DEFAULT_FENCE_TTL,
    Cache,
    CacheUnavailable,
    FillToken,
    RateDecision,
    ResilientCache,
    retry_seconds,
)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "chitram:"
DEFAULT_SOCKET_TIMEOUT = 0.5
DEFAULT_NEAR_CACHE = True
DEFAULT_NEAR_TTL = 5.0
DEFAULT_NEAR_MAX_ENTRIES = 10_000
NEAR_PING_INTERVAL = 1.0
"""Seconds between PINGs on the subscriber connection."""
NEAR_LIVENESS = 3.0
"""The near cache is bypassed when the subscriber heard nothing (not even a PONG) for this long."""
NEAR_RESUBSCRIBE_DELAY = 0.5
"""Seconds between subscription attempts after the subscriber connection failed."""

_GET = """
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
"""

_SET = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

_DELETE = """
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""

_FILL = """
local fence = redis.call('GET', KEYS[2])
if (fence or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_INVALIDATE = """
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# Sliding log: one sorted-set member per counted event, scored in server microseconds.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  allowed = 1
end
local retry = 0
if allowed == 0 then
  local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  retry = tonumber(freeing[2]) + period - now
end
local reset = 0
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if newest[2] then reset = tonumber(newest[2]) + period - now end
redis.call('PEXPIRE', KEYS[1], math.ceil(period / 1000) + 1000)
return {allowed, count, retry, reset}
"""

_OWN_PARAMS = {
    "prefix",
    "fail_open",
    "fence_ttl",
    "retry_interval",
    "near_cache",
    "near_ttl",
    "near_max_entries",
}


class NearCache:
    """The per-process L1 of one :class:`RedisCache`: bounded, short-lived, and only trusted
    while its invalidation subscription is confirmed and alive.

    Times are ``time.monotonic()`` seconds. Everything here is synchronous and runs on the event
    loop, so no check and the store it guards are ever separated by another task.
    """

    def __init__(self, *, ttl: float, max_entries: int, liveness: float = NEAR_LIVENESS) -> None:
        if ttl <= 0:
            raise ValueError(f"near_ttl must be positive, got {ttl}")
        if max_entries < 1:
            raise ValueError(f"near_max_entries must be positive, got {max_entries}")
        self.ttl = ttl
        self.max_entries = max_entries
        self.liveness = liveness
        self.entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        # When the current subscription was confirmed; None while there is none.
        self.confirmed_at: float | None = None
        self.alive_until = -math.inf
        # Last time an invalidation of each key was heard or made here; reads that began at or
        # before it may not store. Bounded: on overflow it is forgotten and the floor rises.
        self._dropped: dict[str, float] = {}
        self._floor = -math.inf
        self.hits = 0

    def usable(self, now: float) -> bool:
        return self.confirmed_at is not None and now < self.alive_until

    def lookup(self, key: str, now: float) -> bytes | None:
        item = self.entries.get(key)
        if item is None:
            return None
        value, expires = item
        if now >= expires:
            del self.entries[key]
            return None
        self.hits += 1
        return value

    def store(self, key: str, value: bytes, ttl: float, since: float) -> bool:
        """Keep ``value``, read from Redis by an operation that began at ``since``, if safe."""
        now = time.monotonic()
        confirmed = self.confirmed_at
        if (
            confirmed is None
            or now >= self.alive_until
            or since < confirmed
            or since <= self._floor
            or since <= self._dropped.get(key, -math.inf)
        ):
            return False
        expires = since + min(ttl, self.ttl)
        if expires <= now:
            return False
        self.entries[key] = (value, expires)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return True

    def drop(self, key: str) -> None:
        now = time.monotonic()
        self.entries.pop(key, None)
        self._dropped[key] = now
        if len(self._dropped) > self.max_entries:
            self._dropped.clear()
            self._floor = now

    def subscribed(self, now: float) -> None:
        """A new subscription is confirmed: what came before it may have missed messages."""
        self.entries.clear()
        self._dropped.clear()
        self._floor = now
        self.confirmed_at = now
        self.alive_until = now + self.liveness

    def heard(self, now: float) -> None:
        if self.confirmed_at is not None:
            self.alive_until = now + self.liveness

    def lost(self) -> None:
        """The subscription is gone: forget everything and refuse stores until resubscribed."""
        self.confirmed_at = None
        self.alive_until = -math.inf
        self.entries.clear()
        self._dropped.clear()
        self._floor = time.monotonic()


class RedisCache(Cache):
    """The raw backend: every method raises when Redis is unreachable.

    Use :func:`create_cache` (which wraps it in ``ResilientCache``) unless you want the errors.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        fence_ttl: float = DEFAULT_FENCE_TTL,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        client: Redis | None = None,
        near_cache: bool = False,
        near_ttl: float = DEFAULT_NEAR_TTL,
        near_max_entries: int = DEFAULT_NEAR_MAX_ENTRIES,
        near_ping_interval: float = NEAR_PING_INTERVAL,
        near_liveness: float = NEAR_LIVENESS,
    ) -> None:
        self.url = _redact(url)
        self.prefix = prefix
        self.fence_ttl = fence_ttl
        self.channel = f"{prefix}invalidate"
        self._raw_url = url
        self._socket_timeout = socket_timeout
        self._client: Redis = client or Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # One immediate retry replaces a pooled connection that died with a restart.
            retry=Retry(NoBackoff(), 1),
        )
        self._get_ttl = self._client.register_script(_GET)
        self._set = self._client.register_script(_SET)
        self._delete = self._client.register_script(_DELETE)
        self._fill = self._client.register_script(_FILL)
        self._invalidate = self._client.register_script(_INVALIDATE)
        self._hit = self._client.register_script(_HIT)
        self.near: NearCache | None = (
            NearCache(ttl=near_ttl, max_entries=near_max_entries, liveness=near_liveness)
            if near_cache
            else None
        )
        self._ping_interval = near_ping_interval
        self._subscriber: asyncio.Task[None] | None = None
        self._sub_client: Redis | None = None
        self._pubsub: Any = None
        self._sub_failing = False
        self._closed = False
        self.subscriber_name = f"chitram-near-cache-{uuid.uuid4().hex[:12]}"
        """The subscriber connection's ``CLIENT SETNAME``, to find it in ``CLIENT LIST``."""

    @property
    def status(self) -> str:
        return "connected"

    @property
    def near_active(self) -> bool:
        """Whether the near cache is in use right now (enabled and subscription healthy)."""
        return self.near is not None and self.near.usable(time.monotonic())

    def _key(self, key: str) -> str:
        return f"{self.prefix}c:{{{key}}}"

    def _fence(self, key: str) -> str:
        return f"{self.prefix}f:{{{key}}}"

    def get_local(self, key: str) -> bytes | None:
        """The near cache's value while its subscription is alive (what :meth:`get` would
        answer without a round trip), else None."""
        near = self.near
        if near is None:
            return None
        now = time.monotonic()
        if not near.usable(now):
            return None
        return near.lookup(key, now)

    async def get(self, key: str) -> bytes | None:
        near = self.near
        if near is None:
            value = await self._client.get(self._key(key))
            return None if value is None else _as_bytes(value)
        since = time.monotonic()
        if not near.usable(since):
            self._start_subscriber()
            value = await self._client.get(self._key(key))
            return None if value is None else _as_bytes(value)
        cached = near.lookup(key, since)
        if cached is not None:
            return cached
        raw, pttl = await self._get_ttl(keys=[self._key(key)])
        if raw is None:
            return None
        value = _as_bytes(raw)
        if int(pttl) > 0:
            near.store(key, value, int(pttl) / 1000, since)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        if ttl <= 0:
            await self.delete(key)
            return True
        self._drop_local(key)
        await self._set(keys=[self._key(key)], args=[value, _ms(ttl), self.channel, key])
        self._drop_local(key)
        return True

    async def delete(self, key: str) -> None:
        self._drop_local(key)
        await self._delete(keys=[self._key(key)], args=[self.channel, key])
        self._drop_local(key)

    async def begin_fill(self, key: str) -> FillToken | None:
        fence = await self._client.get(self._fence(key))
        return FillToken(
            key=key,
            fence="" if fence is None else _as_bytes(fence).decode(),
            issued_at=time.monotonic(),
        )

    async def fill(self, key: str, value: bytes, ttl: float, token: FillToken) -> bool:
        # A fence lives fence_ttl from its invalidation, which came after the token; refusing
        # tokens older than half of that keeps every fence that matters alive at fill time.
        if token.key != key or token.age() > self.fence_ttl / 2 or ttl <= 0:
            return False
        stored = bool(
            await self._fill(
                keys=[self._key(key), self._fence(key)], args=[token.fence, value, _ms(ttl)]
            )
        )
        if stored and self.near is not None:
            # Refused if an invalidation of ``key`` was heard, or the subscription was not
            # confirmed throughout, since the token was taken.
            self.near.store(key, value, ttl, token.issued_at)
        return stored

    async def invalidate(self, key: str) -> None:
        self._drop_local(key)
        await self._invalidate(
            keys=[self._key(key), self._fence(key)],
            args=[uuid.uuid4().hex, _ms(self.fence_ttl), self.channel, key],
        )
        self._drop_local(key)

    def _drop_local(self, key: str) -> None:
        if self.near is not None:
            self.near.drop(key)

    async def hit(self, key: str, limit: int, period: float) -> RateDecision:
        period_us = max(1, round(period * 1_000_000))
        allowed, count, retry_us, reset_us = await self._hit(
            keys=[f"{self.prefix}rl:{key}"], args=[limit, period_us, uuid.uuid4().hex]
        )
        ok = bool(allowed)
        return RateDecision(
            allowed=ok,
            limit=limit,
            remaining=max(limit - int(count), 0),
            retry_after=0 if ok else retry_seconds(int(retry_us) / 1_000_000),
            reset_after=max(int(reset_us), 0) / 1_000_000,
        )

    async def ping(self) -> float:
        start = time.perf_counter()
        try:
            await self._client.ping()
        except Exception as exc:  # whatever redis-py raised, health must see "down"
            raise CacheUnavailable(f"Redis unreachable: {type(exc).__name__}: {exc}") from exc
        return (time.perf_counter() - start) * 1000

    async def close(self) -> None:
        self._closed = True
        task, self._subscriber = self._subscriber, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            # redis-py can swallow a cancellation that lands in its connection code (the read
            # timeout then turns it into "no message"), so: cancel, then cut the connection,
            # and the loop also stops by itself on ``_closed``.
            task.cancel()
            await asyncio.wait([task], timeout=0.2)
            pubsub = self._pubsub
            if not task.done() and pubsub is not None and pubsub.connection is not None:
                with contextlib.suppress(Exception):
                    await pubsub.connection.disconnect(nowait=True)
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.2)
        if self.near is not None:
            self.near.lost()
        if self._sub_client is not None:
            await self._sub_client.aclose()
            self._sub_client = None
        await self._client.aclose()

    # The invalidation subscriber ----------------------------------------------------------

    def _start_subscriber(self) -> None:
        """Start the subscriber task on this loop unless it runs (or the cache is closed)."""
        if self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not under asyncio: the near cache just stays off
            return
        task = self._subscriber
        if task is not None and not task.done():
            if not task.get_loop().is_closed():
                return
            # Its loop is gone (the cache moved to another loop): nothing will ever end it.
            assert self.near is not None
            self.near.lost()
            self._sub_client = None
        self._subscriber = loop.create_task(self._subscribe_forever(), name="chitram-near-cache")

    async def _subscribe_forever(self) -> None:
        near = self.near
        assert near is not None
        while not self._closed:
            try:
                await self._subscribe_once(near)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: drop the near cache and subscribe again
                if not self._sub_failing and not self._closed:
                    log.warning(
                        "Near cache for %s bypassed, invalidation subscription lost: %s: %s",
                        self.url,
                        type(exc).__name__,
                        exc,
                    )
                self._sub_failing = True
            finally:
                near.lost()
            if self._closed:
                return
            await asyncio.sleep(NEAR_RESUBSCRIBE_DELAY)

    async def _subscribe_once(self, near: NearCache) -> None:
        if self._sub_client is None:
            # No retries: a dropped connection must surface here, never be replaced silently
            # (redis-py would resubscribe behind our back and messages could have been lost).
            self._sub_client = Redis.from_url(
                self._raw_url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
                retry=Retry(NoBackoff(), 0),
                client_name=self.subscriber_name,
            )
        pubsub = self._pubsub = self._sub_client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            started = last_ping = time.monotonic()
            while not self._stopping():
                message = await pubsub.get_message(timeout=self._ping_interval)
                if self._stopping():
                    return
                now = time.monotonic()
                if message is not None:
                    kind = message["type"]
                    if kind == "message":
                        near.drop(_as_bytes(message["data"]).decode("utf-8", "surrogateescape"))
                    elif kind == "subscribe":
                        near.subscribed(now)
                        if self._sub_failing:
                            self._sub_failing = False
                            log.warning("Near cache for %s is back in use", self.url)
                    elif kind != "pong":
                        raise ConnectionError(f"unexpected {kind!r} on the invalidation channel")
                    near.heard(now)
                if near.confirmed_at is None and now - started > NEAR_LIVENESS:
                    raise TimeoutError("subscription was not confirmed")
                if near.confirmed_at is not None and now >= near.alive_until:
                    raise TimeoutError("no answer on the subscriber connection")
                if now - last_ping >= self._ping_interval:
                    await pubsub.ping()
                    last_ping = now
        finally:
            near.lost()
            self._pubsub = None
            # Typed here: redis-py annotates ``aclose`` in some releases and not in others.
            close: Callable[[], Awaitable[object]] = pubsub.aclose
            with contextlib.suppress(Exception):
                await close()

    def _stopping(self) -> bool:
        if self._closed:
            return True
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError  # a cancellation redis-py swallowed
        return False


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def create_cache(url: str, **options: Any) -> ResilientCache:
    """The ``redis`` plugin factory: a fail-open (or ``fail_open=False``) Redis cache.

    Options (keyword or URL query): ``prefix``, ``fail_open``, ``fence_ttl``, ``retry_interval``
    (seconds between reconnection attempts during an outage), ``socket_timeout``,
    ``near_cache`` (the per-process L1, on by default), ``near_ttl`` (its entries' longest life,
    seconds, default 5) and ``near_max_entries`` (default 10000).
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in _OWN_PARAMS}
    rest = [(k, v) for k, v in query if k not in _OWN_PARAMS]
    redis_url = urlunsplit(parts._replace(query=urlencode(rest)))
    settings: dict[str, Any] = {**ours, **options}
    prefix = str(settings.pop("prefix", DEFAULT_PREFIX))
    fail_open = _parse_bool(settings.pop("fail_open", True))
    fence_ttl = float(settings.pop("fence_ttl", DEFAULT_FENCE_TTL))
    retry_interval = float(settings.pop("retry_interval", 1.0))
    socket_timeout = float(settings.pop("socket_timeout", DEFAULT_SOCKET_TIMEOUT))
    near_cache = _parse_bool(settings.pop("near_cache", DEFAULT_NEAR_CACHE))
    near_ttl = float(settings.pop("near_ttl", DEFAULT_NEAR_TTL))
    near_max_entries = int(settings.pop("near_max_entries", DEFAULT_NEAR_MAX_ENTRIES))
    if settings:
        raise TypeError(f"unknown redis cache options: {', '.join(sorted(settings))}")
    backend = RedisCache(
        redis_url,
        prefix=prefix,
        fence_ttl=fence_ttl,
        socket_timeout=socket_timeout,
        near_cache=near_cache,
        near_ttl=near_ttl,
        near_max_entries=near_max_entries,
    )
    return ResilientCache(backend, fail_open=fail_open, retry_interval=retry_interval)
