"""Cache-aside for image metadata, over any ``chitram.cache`` plugin chosen by URL scheme.

``memory://`` → the in-process ``memory`` plugin, ``redis://`` / ``rediss://`` → ``redis``, any
other scheme → the plugin of that name, ``off`` → no cache (``X-Cache: DISABLED``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import attrs

from chitram_core import plugins
from chitram_core.cache.base import (
    Cache,
    CacheService,
    CacheUnavailable,
    FencedCache,
    FillToken,
    KeyValueCache,
    RateCounter,
    RateDecision,
    ResilientCache,
    get_local,
)
from chitram_core.errors import ConfigurationError
from chitram_core.models import Check, Image
from chitram_core.observe import Observer

__all__ = [
    "Cache",
    "CacheLookup",
    "CacheService",
    "CacheStatus",
    "CacheUnavailable",
    "FencedCache",
    "FillToken",
    "ImageCache",
    "KeyValueCache",
    "RateCounter",
    "RateDecision",
    "ResilientCache",
    "cache_check",
    "open_cache",
    "plugin_name",
]

_SCHEMES = {"memory": "memory", "redis": "redis", "rediss": "redis", "unix": "redis"}
_OFF = {"off", "none", "disabled", "false", "0", ""}

CacheStatus = Literal["HIT", "MISS", "DISABLED"]


def plugin_name(url: str) -> str | None:
    """The plugin a cache URL asks for; None when caching is off."""
    if url.strip().lower() in _OFF:
        return None
    scheme = urlsplit(url.strip()).scheme.lower()
    if not scheme or "://" not in url:
        raise ConfigurationError(
            f"CHITRAM_CACHE_URL: expected memory://, redis://... or off, got {url!r}",
            variable="CHITRAM_CACHE_URL",
        )
    return _SCHEMES.get(scheme, scheme)


def open_cache(
    url: str, *, offered: Mapping[str, Any] | None = None, **options: Any
) -> Cache | None:
    """Create the cache ``url`` names through its plugin; None for ``off``.

    ``options`` always go to the factory. ``offered`` options (Chitram's ``fail_open``) go to
    it unless the URL's query sets the same name (the URL wins) or the factory cannot take them
    (a factory written as ``(url)`` keeps working). A plugin that cannot load raises
    :class:`~chitram_core.errors.PluginError` naming it.
    """
    name = plugin_name(url)
    if name is None:
        return None
    factory = plugins.load(plugins.CACHE, name)
    if offered:
        in_url = {key for key, _ in parse_qsl(urlsplit(url.strip()).query, keep_blank_values=True)}
        for key, value in offered.items():
            if key not in in_url and key not in options and _takes(factory, key):
                options[key] = value
    cache: Cache = factory(url.strip(), **options)
    return cache


def _takes(factory: Callable[..., Any], keyword: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): offer nothing
        return False
    return any(
        p.kind is p.VAR_KEYWORD
        or (p.name == keyword and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in parameters
    )


async def cache_check(cache: CacheService | None) -> tuple[str, Check]:
    """The v1 flat value and the ``checks`` entry for health.

    A cache outage degrades the service (reads go to the database) but does not make it
    unhealthy, since the cache fails open.
    """
    if cache is None:
        return "disabled", Check(status="healthy", detail="cache disabled")
    try:
        latency = await cache.ping()
    except Exception as exc:  # any failure of the probe means "down", with its reason
        return "disconnected", Check(status="degraded", detail=f"{cache.name}: {exc}")
    return "connected", Check(status="healthy", latency_ms=round(latency, 3), detail=cache.name)


@attrs.frozen(kw_only=True)
class CacheLookup:
    """What :meth:`ImageCache.lookup` found, and the token to fill the cache after a miss."""

    image: Image | None
    status: CacheStatus
    token: FillToken | None = None

    @property
    def hit(self) -> bool:
        return self.status == "HIT"


_FORMAT = 1
_DECODED_MAX = 4096


def _encode(image: Image) -> bytes:
    data = attrs.asdict(image, recurse=False)
    # The delete token is shown once, in the upload response; it is never cached.
    data["delete_token"] = None
    created: datetime = data["created_at"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    data["created_at"] = created.isoformat()
    data["_v"] = _FORMAT
    return json.dumps(data, separators=(",", ":")).encode()


def _decode(raw: bytes) -> Image | None:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.pop("_v", None) != _FORMAT:
            return None
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return Image(**data)
    except (ValueError, TypeError, KeyError):
        return None


class ImageCache:
    """Cache-aside for :class:`Image` rows, keyed by image id.

    The read path (what :mod:`chitram_core.reads` does)::

        image = await image_cache.get_image(image_id)          # a HIT when not None
        if image is None:
            token = await image_cache.begin_fill(image_id)     # before reading the database
            image = await repository.get(image_id)
            if image is not None:
                await image_cache.fill_image(image, token)     # refused if invalidated since

    :meth:`lookup` does the first two steps at once and names the ``X-Cache`` status. Writers
    commit to the database first, then call :meth:`invalidate_image`.
    """

    def __init__(
        self,
        cache: FencedCache | None,
        *,
        ttl: float = 300.0,
        prefix: str = "image:",
        observer: Observer | None = None,
    ) -> None:
        self.cache = cache
        self.observer = observer if observer is not None else Observer()
        self.ttl = ttl
        self.prefix = prefix
        # The last value decoded for each key and its Image: decoding is a pure function of
        # the bytes, so equal bytes give the same (frozen) Image without parsing them again.
        self._decoded: dict[str, tuple[bytes, Image]] = {}

    @property
    def enabled(self) -> bool:
        return self.cache is not None

    def key(self, image_id: str) -> str:
        return f"{self.prefix}{image_id}"

    async def get_image(self, image_id: str) -> Image | None:
        """The cached row, or None on a miss (or when caching is off or down)."""
        if self.cache is None:
            return None
        raw = await self.cache.get(self.key(image_id))
        if raw is None:
            return None
        return self._image_of(image_id, raw)

    def local_image(self, image_id: str) -> Image | None:
        """The cached row when the cache holds it in this process (no I/O, no waiting: see
        :func:`~chitram_core.cache.base.get_local`), counted as a hit; None otherwise, and then
        :meth:`get_image` is the way to ask."""
        if self.cache is None:
            return None
        raw = get_local(self.cache, self.prefix + image_id)
        if raw is None:
            return None
        image = self._image_of(image_id, raw)
        if image is not None:
            self.observer.cache("hit")
        return image

    def _image_of(self, image_id: str, raw: bytes) -> Image | None:
        seen = self._decoded.get(image_id)
        if seen is not None and (seen[0] is raw or seen[0] == raw):
            return seen[1]
        image = _decode(raw)
        if image is not None:
            if len(self._decoded) >= _DECODED_MAX:
                self._decoded.clear()
            self._decoded[image_id] = (raw, image)
        return image

    async def begin_fill(self, image_id: str) -> FillToken | None:
        """Take the token for a later :meth:`fill_image`; call it before reading the database."""
        if self.cache is None:
            return None
        return await self.cache.begin_fill(self.key(image_id))

    async def lookup(self, image_id: str) -> CacheLookup:
        """:meth:`get_image`, then on a miss :meth:`begin_fill`, with the X-Cache status."""
        if self.cache is None:
            return CacheLookup(image=None, status="DISABLED")
        image = await self.get_image(image_id)
        if image is not None:
            return CacheLookup(image=image, status="HIT")
        return CacheLookup(image=None, status="MISS", token=await self.begin_fill(image_id))

    async def get_or_load(
        self, image_id: str, load: Callable[[str], Awaitable[Image]]
    ) -> tuple[Image, str]:
        """Cache-aside in one place: the cached row (``HIT``), or ``load(image_id)`` put back
        under the fill token taken before loading (``MISS``; a concurrent invalidation wins),
        or just ``load`` without a cache (``DISABLED``). ``load``'s errors pass through."""
        # lookup()'s steps written out: this is every read's path, and a hit then costs one
        # cache call and no CacheLookup.
        if self.cache is None:
            return await load(image_id), "DISABLED"
        cached = await self.get_image(image_id)
        if cached is not None:
            self.observer.cache("hit")
            return cached, "HIT"
        self.observer.cache("miss")
        token = await self.begin_fill(image_id)
        image = await load(image_id)
        await self.fill_image(image, token)
        return image, "MISS"

    async def fill_image(self, image: Image, token: FillToken | None) -> bool:
        """Put back a row read after a miss, unless it was invalidated since ``token``."""
        if self.cache is None or token is None or token.key != self.key(image.id):
            return False
        return await self.cache.fill(token.key, _encode(image), self.ttl, token)

    async def set_image(self, image: Image) -> bool:
        """Store unconditionally, e.g. right after the row was created."""
        if self.cache is None:
            return False
        return await self.cache.set(self.key(image.id), _encode(image), self.ttl)

    async def invalidate_image(self, image_id: str) -> None:
        """Drop the row and fence it against refills by readers that missed before now."""
        if self.cache is not None:
            await self.cache.invalidate(self.key(image_id))
