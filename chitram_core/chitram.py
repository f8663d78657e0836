"""``Chitram``: one object that opens every part, wires them together and closes them."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import anyio

from chitram_core.admin import Admin, SweepReport, open_database
from chitram_core.auth.api_tokens import ApiTokens
from chitram_core.auth.chain import AuthChain
from chitram_core.background import Background
from chitram_core.cache import ImageCache, open_cache
from chitram_core.cache.base import Cache
from chitram_core.cache.small import SMALL_OBJECTS_BUDGET, SmallObjects
from chitram_core.collector import ByteRemover, Collector, Progress
from chitram_core.db import Database, images
from chitram_core.db import sessions as revoked_sessions
from chitram_core.engine import ImageEngine
from chitram_core.errors import ConfigurationError
from chitram_core.eventloop import asyncio_only_parts, running_backend
from chitram_core.health import check_health, rate_limiter_state
from chitram_core.jobs import JobRunner
from chitram_core.limits import RateLimiter, UploadSlots
from chitram_core.limits.logins import LoginGuard
from chitram_core.models import HealthReport, Image, Principal
from chitram_core.moderation import close_moderator, load_moderators
from chitram_core.observe import Observer
from chitram_core.quotas import Quotas
from chitram_core.resumable import Uploads
from chitram_core.service import ImageService
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError, open_storage
from chitram_core.taggers import close_tagger, load_taggers
from chitram_core.tags.service import TagService
from chitram_core.thumbnailer import THUMBNAIL_JOB, Thumbnailer
from chitram_core.variants import VariantService

log = logging.getLogger(__name__)

try:
    from importlib.metadata import version as _version

    VERSION = _version("chitram")
    """The installed distribution's version (``0.0.0`` when run from a bare source tree)."""
except Exception:  # not installed as a distribution (e.g. run from a source tree)
    VERSION = "0.0.0"


JOB_STATES = ("pending", "running", "failed")


class Chitram:
    """The SDK's entry point: ``async with Chitram(settings) as chitram: ...``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        storage: Storage | None = None,
        background: bool = True,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        """The settings it runs with (from ``CHITRAM_*`` when none are given)."""
        self.observer = observer if observer is not None else Observer()
        """What this instance reports to (metrics, tracing, a test); a do-nothing
        :class:`Observer` unless given. Every part reports to it, and only to it."""
        self._storage_override = storage
        self.background = background
        """Whether opening starts the background job runner (False in short-lived tools)."""
        self._stack: AsyncExitStack | None = None
        self._background: Background | None = None
        self.database: Database
        """The database (SQLAlchemy async engine and the schema), once open."""
        self.admin: Admin
        """Administration on this instance: users, migrations, storage moves, the sweep."""
        self.storage: Storage
        """The store of image bytes (a ``chitram.storage`` plugin), once open."""
        self.cache: Cache | None = None
        """The cache (a ``chitram.cache`` plugin), or None when ``cache_url`` is ``off``."""
        self.auth: AuthChain
        """Registration, login, tokens and sessions over the configured auth providers."""
        self.tokens: ApiTokens
        """Personal API tokens: ``create``, ``list``, ``revoke``."""
        self.users: Quotas
        """Users' usage and quotas: ``usage``, ``set_quota``, ``check_declared``."""
        self.images: ImageService
        """Upload, get, read, list and delete images."""
        self.thumbnails: Thumbnailer
        """Thumbnails: made at upload or on demand, and their pending jobs."""
        self.engine: ImageEngine
        """The image engine: worker processes that run every decode, bounded in memory."""
        self.jobs: JobRunner
        """The durable background job runner (auto-tagging and other deferred work)."""
        self.tags: TagService
        """Tags on images, tag search and auto-tagging."""
        self.variants: VariantService
        """Resized or re-encoded variants of images, and their signed URLs."""
        self.uploads: Uploads
        """Resumable uploads: ``create``, ``append``, ``status``, ``cancel``, ``finish``."""
        self.rate_limiter: RateLimiter
        """The rate limiter (uploads, auth) over the rate-limit backend."""
        self.login_guard: LoginGuard
        """Marks an email under attack after many wrong passwords, refusing only the clients that
        failed for it (the owner still signs in)."""
        self.upload_slots: UploadSlots
        """The per-process limit on uploads in progress, with its bounded queue."""
        self.remover: ByteRemover
        """Removes stored bytes no row references any more, retrying failures."""
        self.collector: Collector
        """Finds stored objects no row references (the sweep's first phase)."""
        self._image_cache = ImageCache(None, observer=self.observer)
        self._limiter_cache: Cache | None = None

    async def __aenter__(self) -> Chitram:
        settings = self.settings
        settings.check_production()
        settings = self.settings = settings.with_jwt_secret()
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
        if running_backend() == "trio" and (refused := asyncio_only_parts(settings)):
            raise ConfigurationError(
                "under trio, these parts cannot run (run the host on asyncio, or change "
                "them): " + "; ".join(refused)
            )
        self.database = open_database(settings)
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
        self.cache = open_cache(settings.cache_url, offered=_cache_options(settings))
        if self.cache is not None:
            stack.push_async_callback(self.cache.close)
        limiter_url = settings.resolved_rate_limit_url
        if self.cache is not None and limiter_url == settings.cache_url:
            limiter_cache = self.cache
        else:
            opened = open_cache(limiter_url, offered=_cache_options(settings))
            if opened is None:
                opened = open_cache("memory://")
            assert opened is not None
            limiter_cache = opened
            stack.push_async_callback(limiter_cache.close)
        self._limiter_cache = limiter_cache
        self.rate_limiter = RateLimiter(limiter_cache)
        self.login_guard = LoginGuard(self.rate_limiter, limiter_cache, settings.login_guard)
        self.upload_slots = UploadSlots(
            settings.upload_concurrency,
            settings.upload_wait_timeout,
            per_identity=settings.uploads_per_user,
            queue=settings.upload_queue,
            reserve=settings.reserved_upload_slots,
            room_wait=settings.upload_room_wait,
            observer=self.observer,
        )
        self.tokens = ApiTokens(settings, self.database)
        self.users = Quotas(settings, self.database)
        self.auth = await AuthChain.open(
            settings, self.database, observer=self.observer, api_tokens=self.tokens
        )
        stack.push_async_callback(self.auth.close)
        for name, breaker in self.auth.breakers.items():
            self.observer.auth_provider(name, breaker.state.value)
        self.observer.upload_slots(0, 0, settings.upload_concurrency)

        # Without a cache, an ImageCache of nothing: every read is DISABLED.
        self._image_cache = ImageCache(self.cache, ttl=settings.cache_ttl, observer=self.observer)
        # Every part is built after the parts it needs and given them; none is set afterwards.
        # Closed after the thumbnailer and the task group (the stack unwinds in reverse).
        self.engine = ImageEngine.from_settings(settings)
        stack.push_async_callback(self.engine.aclose)
        self.jobs = JobRunner(
            self.database,
            poll_interval=settings.jobs_poll_interval,
            max_backoff=settings.jobs_max_backoff,
            concurrency=settings.jobs_concurrency,
        )
        self.thumbnails = Thumbnailer(
            settings,
            self.database,
            self.storage,
            engine=self.engine,
            jobs=self.jobs,
            on_ready=self._thumbnail_ready,
            observer=self.observer,
        )
        self.variants = VariantService(settings, self.database, self.storage, self.engine)
        taggers = load_taggers(settings)
        for tagger in taggers:
            stack.push_async_callback(close_tagger, tagger)
        self.tags = TagService(
            settings,
            self.database,
            self.storage,
            taggers=taggers,
            jobs=self.jobs,
            engine=self.engine,
        )
        moderators = load_moderators(settings)
        for moderator in moderators:
            stack.push_async_callback(close_moderator, moderator)
        self.remover = ByteRemover(self.database, self.storage)
        self.collector = Collector(self.database, self.storage)
        self.admin = Admin(settings, self.database, storage=self.storage, sweep=self.sweep)
        self.images = ImageService(
            settings,
            self.database,
            self.storage,
            thumbnailer=self.thumbnails,
            cache=self._image_cache,
            engine=self.engine,
            variants=self.variants,
            record_hooks=(self.tags.enqueue,),
            wake=self.jobs.wake,
            tagging=bool(taggers),
            remover=self.remover,
            small_objects=SmallObjects(SMALL_OBJECTS_BUDGET),
            observer=self.observer,
            quotas=self.users,
            moderators=moderators,
        )
        self.uploads = Uploads(
            settings,
            self.database,
            self.storage,
            self.images.ingest,
            get_image=self.images.get,
            remove_image=self._remove_image,
            creation_checks=(self._quota_at_creation,),
            slots=self.upload_slots,
            observer=self.observer,
        )
        if self.background and settings.run_jobs:
            # Its own task, not a task group held open until __aexit__: the host may close
            # Chitram from another task; closing drains jobs instead of cancelling them.
            runner = Background("chitram-thumbnails")
            await runner.start()
            stack.push_async_callback(runner.aclose)
            stack.push_async_callback(self.thumbnails.stop)
            self._background = runner
            runner.start_soon(self.thumbnails.run_forever)
            if self.observer.enabled:
                reporting = anyio.Event()
                stack.push_async_callback(_set_event, reporting)
                runner.start_soon(self._report_jobs, reporting)
            stack.push_async_callback(self.jobs.stop, settings.shutdown_grace)
            runner.start_soon(self.jobs.run_forever)

    async def _remove_image(self, image: Image, owner: Principal | None) -> None:
        await self.images.delete(image.id, principal=owner, delete_token=image.delete_token)

    async def _quota_at_creation(self, owner: Principal | None, length: int) -> None:
        """A resumable upload's declared length against its owner's quota, at creation."""
        await self.users.check_declared(owner.user_id if owner else None, length)

    async def _thumbnail_ready(self, sha256: str) -> None:
        if not self._image_cache.enabled:
            return
        async with self.database.connect() as conn:
            ids = await images.ids_for_blob(conn, sha256)
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
        """The rate-limit backend as health reports it: connected, degraded or disabled."""
        return rate_limiter_state(self._limiter_cache)

    async def job_counts(self) -> dict[tuple[str, str], int]:
        """Background jobs by ``(kind, state)``, as the database has them (every process's)."""
        runner = {(kind, state): 0 for kind in self.jobs.kinds for state in JOB_STATES}
        runner.update(await self.jobs.counts())
        counts = {key: n for key, n in runner.items() if key[0] != THUMBNAIL_JOB}
        counts.update(await self.thumbnails.counts())  # the rows' states, not their jobs'
        return counts

    async def _report_jobs(self, closing: anyio.Event) -> None:
        """Tell the observer the job counts every ``metrics_interval`` seconds while open."""
        while not closing.is_set():
            # Shielded: a query cancelled mid-flight at shutdown can leave a driver task behind.
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                try:
                    self.observer.jobs(await self.job_counts())
                except Exception as exc:  # a database outage shows in health; keep going
                    log.debug("could not count jobs for metrics: %s", exc)
            with anyio.move_on_after(self.settings.metrics_interval):
                await closing.wait()

    async def health(self) -> HealthReport:
        """Check the database, the store, the cache and the auth providers, and report."""
        return await check_health(
            version=VERSION,
            database=self.database,
            storage=self.storage,
            cache=self.cache,
            auth=self.auth,
            upload_slots=self.upload_slots,
            limiter_cache=self._limiter_cache,
        )

    async def sweep(
        self, *, older_than: float = 3600.0, progress: Progress | None = None
    ) -> SweepReport:
        """Remove bytes that no row references, retry queued removals, make missing thumbnails,
        and remove expired resumable uploads.

        Objects younger than ``older_than`` seconds are left alone: an upload in flight has
        written its bytes but not yet committed its row. ``progress(phase, done, total)`` is
        called as the work goes: ``scan`` (objects listed; no total), ``remove``, ``thumbnails``.
        """
        expired = await self.uploads.sweep(older_than)
        orphans = await self.collector.queue_orphans(older_than, progress)
        removed, left = await self.remover.drain(progress=progress)
        made = await self.thumbnails.run_pending(progress=progress)
        await self.jobs.run_due()
        filled = await self.variants.backfill_placeholders()
        for sha256 in filled:
            await self._thumbnail_ready(sha256)  # cached image rows must show them
        async with self.database.transaction() as conn:
            forgotten = await revoked_sessions.delete_expired(conn, datetime.now(UTC))
        return SweepReport(
            orphans_removed=orphans,
            pending_removed=removed,
            pending_left=left,
            thumbnails_made=made,
            placeholders_made=len(filled),
            uploads_expired=expired,
            revocations_expired=forgotten,
        )


def _cache_options(settings: Settings) -> dict[str, Any]:
    """What Chitram offers every cache plugin: whether an outage fails open. ``open_cache``
    leaves it out when the URL sets ``fail_open`` itself (the URL wins)."""
    return {"fail_open": settings.cache_fail_open}


async def open_chitram(settings: Settings | None = None, **kwargs: Any) -> Chitram:
    """Open without a context manager (remember ``await chitram.__aexit__(None, None, None)``)."""
    return await Chitram(settings, **kwargs).__aenter__()


async def _set_event(event: anyio.Event) -> None:
    event.set()
