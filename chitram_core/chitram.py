"""``Chitram``: one object that opens every part, wires them together and closes them."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import anyio
import attrs
from anyio.abc import TaskGroup
from sqlalchemy import select

from chitram_core.auth.chain import AuthChain
from chitram_core.cache import ImageCache, open_cache
from chitram_core.cache.base import Cache
from chitram_core.db import Database
from chitram_core.db.repository import queue_deletions
from chitram_core.db.tables import blobs, thumbnails, variants
from chitram_core.engine import ImageEngine
from chitram_core.errors import ConfigurationError
from chitram_core.health import check_health
from chitram_core.limits import RateLimiter, UploadSlots
from chitram_core.models import HealthReport
from chitram_core.service import ImageService
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError, open_storage
from chitram_core.thumbnailer import Thumbnailer
from chitram_core.variants import VariantService

log = logging.getLogger(__name__)

try:
    from importlib.metadata import version as _version

    VERSION = _version("chitram")
except Exception:  # not installed as a distribution (e.g. run from a source tree)
    VERSION = "0.0.0"


@attrs.frozen
class SweepReport:
    orphans_removed: int
    pending_removed: int
    pending_left: int
    thumbnails_made: int
    placeholders_made: int = 0


class Chitram:
    """The SDK's entry point: ``async with Chitram(settings) as chitram: ...``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        storage: Storage | None = None,
        background: bool = True,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self._storage_override = storage
        self.background = background
        self._stack: AsyncExitStack | None = None
        self._task_group: TaskGroup | None = None
        self.database: Database
        self.storage: Storage
        self.cache: Cache | None = None
        self.auth: AuthChain
        self.images: ImageService
        self.thumbnails: Thumbnailer
        self.engine: ImageEngine
        self.variants: VariantService
        self.rate_limiter: RateLimiter
        self.upload_slots: UploadSlots
        self._limiter_cache: Cache | None = None

    async def __aenter__(self) -> Chitram:
        settings = self.settings
        settings.check_production()
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await self._open(stack, settings)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def _open(self, stack: AsyncExitStack, settings: Settings) -> None:
        if settings.is_sqlite or settings.resolved_storage_url.startswith("file:"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = Database(settings.resolved_database_url)
        stack.push_async_callback(self.database.dispose)
        if settings.should_auto_migrate:
            await self.database.upgrade()
        if self._storage_override is not None:
            self.storage = self._storage_override
        else:
            try:
                self.storage = open_storage(
                    settings.resolved_storage_url, dict(settings.storage_options)
                )
            except StorageError as exc:
                raise ConfigurationError(f"CHITRAM_STORAGE_URL: {exc}") from exc
            stack.push_async_callback(self.storage.close)
        self.cache = open_cache(settings.cache_url, **_cache_options(settings, settings.cache_url))
        if self.cache is not None:
            stack.push_async_callback(self.cache.close)
        limiter_url = settings.resolved_rate_limit_url
        if self.cache is not None and limiter_url == settings.cache_url:
            limiter_cache = self.cache
        else:
            opened = open_cache(limiter_url, **_cache_options(settings, limiter_url))
            if opened is None:
                opened = open_cache("memory://")
            assert opened is not None
            limiter_cache = opened
            stack.push_async_callback(limiter_cache.close)
        self._limiter_cache = limiter_cache
        self.rate_limiter = RateLimiter(limiter_cache)
        self.upload_slots = UploadSlots(settings.upload_concurrency, settings.upload_wait_timeout)
        self.auth = await AuthChain.open(settings, self.database)
        stack.push_async_callback(self.auth.close)

        # ``is not None``: an empty MemoryCache has ``__len__`` 0 and so is falsy.
        image_cache = (
            ImageCache(self.cache, ttl=settings.cache_ttl) if self.cache is not None else None
        )
        # Closed after the thumbnailer and the task group (the stack unwinds in reverse).
        self.engine = ImageEngine.from_settings(settings)
        stack.push_async_callback(self.engine.aclose)
        self.thumbnails = Thumbnailer(
            settings,
            self.database,
            self.storage,
            on_ready=self._thumbnail_ready,
            engine=self.engine,
        )
        self.images = ImageService(
            settings,
            self.database,
            self.storage,
            cache=image_cache,
            on_recorded=self.thumbnails.enqueue,
            on_uploaded=self.thumbnails.schedule,
            thumbnail_params=self.thumbnails.params_key,
            engine=self.engine,
        )
        self.images.thumbnailer = self.thumbnails
        # wave 2: variants and placeholders
        self.variants = VariantService(settings, self.database, self.storage, self.engine)
        self.images.variants = self.variants
        self._image_cache = image_cache
        if self.background:
            task_group = anyio.create_task_group()
            await stack.enter_async_context(task_group)
            stack.push_async_callback(self.thumbnails.stop)
            self._task_group = task_group
            self.thumbnails.attach(task_group)
            task_group.start_soon(self.thumbnails.run_forever)

    async def _thumbnail_ready(self, sha256: str) -> None:
        if self._image_cache is None:
            return
        async with self.database.connect() as conn:
            from chitram_core.db.repository import image_ids_for_blob

            ids = await image_ids_for_blob(conn, sha256)
        for image_id in ids:
            await self._image_cache.invalidate_image(image_id)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    # operations ---------------------------------------------------------------------------

    def rate_limiter_state(self) -> str:
        cache = self._limiter_cache
        if cache is None:
            return "disabled"
        return "connected" if getattr(cache, "connected", True) else "degraded"

    async def health(self) -> HealthReport:
        return await check_health(self, VERSION)

    async def sweep(self, *, older_than: float = 3600.0) -> SweepReport:
        """Remove bytes that no row references, retry queued removals, make missing thumbnails.

        Objects younger than ``older_than`` seconds are left alone: an upload in flight has
        written its bytes but not yet committed its row.
        """
        orphans = await self._queue_orphans(older_than)
        removed, left = await self.images.remover.drain()
        made = await self.thumbnails.run_pending()
        filled = await self.variants.backfill_placeholders()
        for sha256 in filled:
            await self._thumbnail_ready(sha256)  # cached image rows must show them
        return SweepReport(
            orphans_removed=orphans,
            pending_removed=removed,
            pending_left=left,
            thumbnails_made=made,
            placeholders_made=len(filled),
        )

    async def _queue_orphans(self, older_than: float) -> int:
        async with self.database.connect() as conn:
            live = {row[0] for row in await conn.execute(select(blobs.c.storage_key))}
            live |= {row[0] for row in await conn.execute(select(thumbnails.c.key))}
            live |= {row[0] for row in await conn.execute(select(variants.c.key))}
        candidates: list[str] = []
        for prefix in ("blobs", "thumbnails", "tmp", "variants"):
            async for key in self.storage.keys(prefix):
                if key not in live and await self._old_enough(key, older_than):
                    candidates.append(key)
        if candidates:
            async with self.database.transaction() as conn:
                await queue_deletions(conn, candidates)
        return len(candidates)

    async def _old_enough(self, key: str, older_than: float) -> bool:
        if older_than <= 0:
            return True
        modified = getattr(self.storage, "modified", None)
        if modified is None:
            log.warning(
                "storage %s cannot tell object ages; the sweep needs older_than=0", self.storage.url
            )
            return False
        when: datetime | None = await modified(key)
        if when is None:
            return False  # unknown age: it could be an upload in flight
        return (datetime.now(UTC) - when).total_seconds() >= older_than


def _cache_options(settings: Settings, url: str) -> dict[str, Any]:
    """Options every networked cache plugin takes: whether an outage fails open."""
    if url.split("://", 1)[0] in {"redis", "rediss", "unix"}:
        return {"fail_open": settings.cache_fail_open}
    return {}


async def open_chitram(settings: Settings | None = None, **kwargs: Any) -> Chitram:
    """Open without a context manager (remember ``await chitram.__aexit__(None, None, None)``)."""
    return await Chitram(settings, **kwargs).__aenter__()
