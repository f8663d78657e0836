"""The Redis cache: shared by every app process, for scale-out deployments.

``redis://host:6379/0?prefix=chitram:&fail_open=true`` (``rediss://`` for TLS). Our own query
parameters (``prefix``, ``fail_open``, ``fence_ttl``, ``retry_interval``) are taken out of the URL
before the rest reaches redis-py.

Fills and counters run as Lua scripts, so each is one atomic step on the server; counters use the
server's clock, so processes with skewed clocks still share one window. :func:`create_cache`
wraps the backend in :class:`~chitram_core.cache.base.ResilientCache`: an outage never reaches a
caller, and redis-py reconnects on the next attempt.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chitram_core.cache.base import (
    DEFAULT_FENCE_TTL,
    CacheUnavailable,
    FillToken,
    RateDecision,
    ResilientCache,
    retry_seconds,
)

DEFAULT_PREFIX = "chitram:"
DEFAULT_SOCKET_TIMEOUT = 0.5

_FILL = """
local fence = redis.call('GET', KEYS[2])
if (fence or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_INVALIDATE = """
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
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

_OWN_PARAMS = {"prefix", "fail_open", "fence_ttl", "retry_interval"}


class RedisCache:
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
    ) -> None:
        self.url = _redact(url)
        self.prefix = prefix
        self.fence_ttl = fence_ttl
        self._client: Redis = client or Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # One immediate retry replaces a pooled connection that died with a restart.
            retry=Retry(NoBackoff(), 1),
        )
        self._fill = self._client.register_script(_FILL)
        self._invalidate = self._client.register_script(_INVALIDATE)
        self._hit = self._client.register_script(_HIT)

    @property
    def status(self) -> str:
        return "connected"

    def _key(self, key: str) -> str:
        return f"{self.prefix}c:{{{key}}}"

    def _fence(self, key: str) -> str:
        return f"{self.prefix}f:{{{key}}}"

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self._key(key))
        return None if value is None else _as_bytes(value)

    async def set(self, key: str, value: bytes, ttl: float) -> bool:
        if ttl <= 0:
            await self.delete(key)
            return True
        await self._client.set(self._key(key), value, px=_ms(ttl))
        return True

    async def delete(self, key: str) -> None:
        await self._client.delete(self._key(key))

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
        stored = await self._fill(
            keys=[self._key(key), self._fence(key)], args=[token.fence, value, _ms(ttl)]
        )
        return bool(stored)

    async def invalidate(self, key: str) -> None:
        await self._invalidate(
            keys=[self._key(key), self._fence(key)],
            args=[uuid.uuid4().hex, _ms(self.fence_ttl)],
        )

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
        await self._client.aclose()


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
    (seconds between reconnection attempts during an outage), ``socket_timeout``.
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
    if settings:
        raise TypeError(f"unknown redis cache options: {', '.join(sorted(settings))}")
    backend = RedisCache(
        redis_url, prefix=prefix, fence_ttl=fence_ttl, socket_timeout=socket_timeout
    )
    return ResilientCache(backend, fail_open=fail_open, retry_interval=retry_interval)
