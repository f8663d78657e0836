"""Durable thumbnail jobs: the pending state lives in the ``thumbnails`` table.

An upload inserts a pending row in its own transaction, then asks for a background render. A
crash loses nothing: the start-up pass and the periodic sweep render whatever is pending, and
a request for a missing thumbnail renders it at once. Concurrent requests in one process share
one job; across processes a render is idempotent (the key is the content hash + parameters).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core import observe
from chitram_core.background import Background
from chitram_core.db import Database
from chitram_core.db.repository import insert_or_ignore
from chitram_core.db.tables import blobs, thumbnails, utcnow
from chitram_core.errors import (
    ChitramError,
    ImageTooLarge,
    ImageWorkerCrashed,
    InvalidImage,
    ServiceUnavailable,
)
from chitram_core.images.thumbnails import ThumbnailParams, render_thumbnail_async
from chitram_core.logs import job_context
from chitram_core.models import Image, Thumbnail
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError, blob_key, thumbnail_key

if TYPE_CHECKING:
    from chitram_core.engine import ImageEngine

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
BASE_BACKOFF = 2.0
MAX_BACKOFF = 3600.0


class Thumbnailer:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        storage: Storage,
        *,
        on_ready: Callable[[str], Awaitable[None]] | None = None,
        engine: ImageEngine | None = None,
    ) -> None:
        self.settings = settings
        self.db = database
        self.storage = storage
        self.params = ThumbnailParams(
            size=settings.thumbnail_size,
            format=settings.thumbnail_format,
            quality=settings.thumbnail_quality,
        )
        self.params_key = self.params.key_suffix
        self.on_ready = on_ready
        self.engine = engine
        self._jobs: dict[str, anyio.Event] = {}
        self._limiter = anyio.CapacityLimiter(settings.thumbnail_workers)
        self._background: Background | None = None
        self._stopping = False
        self._wake = anyio.Event()

    def key_for(self, sha256: str) -> str:
        return thumbnail_key(sha256, self.params_key)

    # scheduling ---------------------------------------------------------------------------

    async def enqueue(self, conn: AsyncConnection, sha256: str) -> None:
        """Record the pending job in the caller's transaction (the upload's)."""
        key = self.key_for(sha256)
        now = utcnow()
        values = dict(
            key=key,
            sha256=sha256,
            params=self.params_key,
            status="pending",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        if conn.dialect.name in ("sqlite", "postgresql"):
            await insert_or_ignore(conn, thumbnails, values, ("key",))  # one statement
            return
        exists = (
            await conn.execute(select(thumbnails.c.key).where(thumbnails.c.key == key))
        ).first()
        if exists is None:
            await conn.execute(insert(thumbnails).values(**values))

    def attach(self, background: Background) -> None:
        self._background = background

    def schedule(self, image: Image) -> None:
        """Render in the background when a runner is attached; else the sweep will."""
        if self._background is not None and not self._stopping and not image.thumbnail_ready:
            self._background.start_soon(self._render_quietly, image.sha256)

    async def _render_quietly(self, sha256: str) -> None:
        if self._stopping:
            return  # the pending row stays; the next start-up pass renders it
        try:
            await self.render(sha256)
        except ChitramError as exc:
            log.info("thumbnail for %s not made yet: %s", sha256, exc.message)
        except Exception:
            log.exception("thumbnail job for %s crashed", sha256)

    async def run_forever(self, interval: float = 30.0) -> None:
        """The periodic sweep: render due pending jobs, then sleep, until :meth:`stop`."""
        while not self._stopping:
            try:
                await self.run_pending()
            except Exception:
                log.exception("thumbnail sweep failed; retrying in %.0f s", interval)
            with anyio.move_on_after(interval):
                await self._wake.wait()

    async def stop(self) -> None:
        """Stop taking work and wake the sweep so it ends. The runner (``Background.aclose``)
        then lets running jobs finish: a database call cancelled mid-way leaves a driver task
        behind that hangs the event loop's close."""
        self._stopping = True
        self._wake.set()
        self._background = None

    async def run_pending(
        self, limit: int = 100, progress: Callable[[str, int, int | None], None] | None = None
    ) -> int:
        """Render every pending job that is due; how many became ready."""
        now = utcnow()
        async with self.db.connect() as conn:
            rows = await conn.execute(
                select(thumbnails.c.sha256)
                .where(
                    and_(
                        thumbnails.c.status.in_(("pending", "stalled")),
                        thumbnails.c.params == self.params_key,
                        or_(
                            thumbnails.c.next_attempt_at.is_(None),
                            thumbnails.c.next_attempt_at <= now,
                        ),
                    )
                )
                .limit(limit)
            )
            due = [row[0] for row in rows]
        made = 0
        for done, sha256 in enumerate(due, 1):
            if self._stopping:
                break
            try:
                await self.render(sha256)
                made += (await self._row(sha256) or {}).get("status") == "ready"
            except ChitramError as exc:
                log.info("thumbnail for %s: %s", sha256, exc.message)
            if progress is not None:
                progress("thumbnails", done, len(due))
        return made

    # rendering ----------------------------------------------------------------------------

    async def get(self, image: Image) -> Thumbnail:
        """The image's thumbnail, rendered now if it is missing (shared with other callers)."""
        row = await self._row(image.sha256)
        if row is None or row["status"] != "ready":
            if row is not None and row["status"] == "failed":
                raise InvalidImage(f"No thumbnail can be made for this image: {row['error']}")
            await self.render(image.sha256, force=True)
            row = await self._row(image.sha256)
            if row is None or row["status"] != "ready":
                raise ServiceUnavailable("The thumbnail is not ready yet", retry_after=2)
        return Thumbnail(
            image_id=image.id,
            key=row["key"],
            content_type=row["content_type"],
            size=row["size"],
            sha256=_etag_hash(row["key"], row["size"]),
            width=row["width"],
            height=row["height"],
        )

    async def _row(self, sha256: str) -> dict[str, Any] | None:
        async with self.db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(thumbnails).where(thumbnails.c.key == self.key_for(sha256))
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    async def render(self, sha256: str, *, force: bool = False) -> None:
        """Make the thumbnail for ``sha256`` unless it exists; one job per key per process."""
        key = self.key_for(sha256)
        running = self._jobs.get(key)
        if running is not None:
            await running.wait()
            return
        done = self._jobs[key] = anyio.Event()
        try:
            with job_context("thumbnail", key):
                await self._render(sha256, key, force=force)
        finally:
            del self._jobs[key]
            done.set()

    async def _render(self, sha256: str, key: str, *, force: bool) -> None:
        async with self.db.connect() as conn:
            blob = (
                await conn.execute(select(blobs.c.storage_key).where(blobs.c.sha256 == sha256))
            ).first()
            row = (
                (await conn.execute(select(thumbnails).where(thumbnails.c.key == key)))
                .mappings()
                .first()
            )
        if blob is None:
            return  # the image was deleted meanwhile
        if row is None:
            async with self.db.transaction() as conn:
                await self.enqueue(conn, sha256)
        elif row["status"] == "ready" or (row["status"] == "failed" and not force):
            return
        try:
            data = b"".join([chunk async for chunk in self.storage.read(blob_key(sha256))])
            with observe.observer.image_work("thumbnail"):
                rendered = await render_thumbnail_async(
                    data,
                    self.params,
                    max_pixels=self.settings.max_pixels,
                    timeout=self.settings.decode_timeout,
                    limiter=self._limiter,
                    engine=self.engine,
                    max_scans=self.settings.jpeg_max_scans,
                    background=not force,  # a request waiting for it (force) goes first
                )

            async def body() -> AsyncIterator[bytes]:
                yield rendered.data

            await self.storage.write(key, body())
        except ImageWorkerCrashed as exc:
            # Maybe the file, maybe the host (the OOM killer): a few tries, then "failed".
            await self._fail(sha256, key, exc.message, definite=False, final="failed")
            raise
        except (InvalidImage, ImageTooLarge) as exc:
            await self._fail(sha256, key, exc.message, definite=True)
            raise
        except (StorageError, OSError) as exc:
            await self._fail(sha256, key, f"storage: {exc}", definite=False)
            raise ServiceUnavailable("Storage is unavailable", retry_after=5) from exc
        async with self.db.transaction() as conn:
            still = (
                await conn.execute(select(blobs.c.sha256).where(blobs.c.sha256 == sha256))
            ).first()
            if still is None:
                # Deleted while rendering: the bytes we wrote have no row; remove them.
                await self.storage.delete(key)
                return
            await conn.execute(
                update(thumbnails)
                .where(thumbnails.c.key == key)
                .values(
                    status="ready",
                    error=None,
                    content_type=rendered.content_type,
                    size=len(rendered.data),
                    width=rendered.width,
                    height=rendered.height,
                    updated_at=utcnow(),
                )
            )
        if self.on_ready is not None:
            await self.on_ready(sha256)

    async def _fail(
        self, sha256: str, key: str, reason: str, *, definite: bool, final: str = "stalled"
    ) -> None:
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(select(thumbnails.c.attempts).where(thumbnails.c.key == key))
            ).first()
            if row is None:
                return
            attempts = row[0] + 1
            give_up = definite or attempts >= MAX_ATTEMPTS
            # "failed": the bytes cannot be thumbnailed. "stalled": storage kept failing; the
            # sweep retries after a long back-off and a request retries at once.
            status = "failed" if definite else (final if give_up else "pending")
            delay = min(BASE_BACKOFF**attempts, MAX_BACKOFF)
            await conn.execute(
                update(thumbnails)
                .where(thumbnails.c.key == key)
                .values(
                    attempts=attempts,
                    status=status,
                    error=reason[:1000],
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                    updated_at=utcnow(),
                )
            )
        if give_up and self.on_ready is not None:
            await self.on_ready(sha256)  # cached rows must now show the error
        log.warning(
            "thumbnail %s failed (attempt %d%s): %s",
            key,
            attempts,
            ", giving up" if give_up else "",
            reason,
        )


def _etag_hash(key: str, size: object) -> str:
    return hashlib.sha256(f"{key}:{size}".encode()).hexdigest()
