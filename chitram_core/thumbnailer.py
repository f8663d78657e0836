"""Thumbnails: rendered with the upload, in the background as durable jobs, or at once for a
request.

Usually the upload renders the thumbnail in its own image-engine job and records it ready in
its transaction (:meth:`Thumbnailer.record_rendered`, see :mod:`chitram_core.ingest`); the job
below is for the rest (the render did not fit, failed or was skipped, storage refused it,
``CHITRAM_THUMBNAIL_AT_UPLOAD=false``).

Each thumbnail has a row in ``thumbnails`` (one per content hash and parameters: identical images
share it), which the API reads: ``pending``, then ``ready``, ``stalled`` (storage kept failing;
retried after a long back-off, and at once by a request) or ``failed`` (the bytes cannot be
thumbnailed). The work is a ``thumbnail`` job of the one job runner (:mod:`chitram_core.jobs`),
keyed by the thumbnail's storage key and recorded in the upload's transaction: the runner claims
it with a lease (a killed process's job is taken over when the lease runs out), and the row's
outcome decides the job's (ready: done; failed: failed; pending or stalled: retried when the row
says). Rows still to render that have no job (older databases, older processes) get one at start
and on every sweep. Concurrent requests in one process share one render; across processes a
render is idempotent (the key is the content hash + parameters).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import timedelta
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db import Database
from chitram_core.db import blobs as blobs_sql
from chitram_core.db import jobs as jobs_sql
from chitram_core.db import thumbnails as sql
from chitram_core.db.tables import utcnow
from chitram_core.engine.base import Engine
from chitram_core.engine.local import local_file
from chitram_core.engine.render import render_thumbnail_async
from chitram_core.errors import (
    ChitramError,
    ImageTooLarge,
    ImageWorkerCrashed,
    InvalidImage,
    ServiceUnavailable,
)
from chitram_core.images.thumbnails import RenderedThumbnail, ThumbnailParams
from chitram_core.jobs import JobFailed, JobRunner, RetryLater
from chitram_core.logs import job_context
from chitram_core.models import Image, Thumbnail
from chitram_core.observe import Observer
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError, blob_key, thumbnail_key

log = logging.getLogger(__name__)

THUMBNAIL_JOB = "thumbnail"
STATES = ("pending", "ready", "stalled", "failed")
MAX_ATTEMPTS = 4
BASE_BACKOFF = 2.0
MAX_BACKOFF = 3600.0
JOB_LEASE = 30.0
"""Seconds before a silent process's thumbnail job is taken over (renewed while it renders)."""


class Thumbnailer:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        storage: Storage,
        *,
        engine: Engine,
        jobs: JobRunner,
        on_ready: Callable[[str], Awaitable[None]],
        observer: Observer | None = None,
    ) -> None:
        """Background renders are ``thumbnail`` jobs of ``jobs`` (as many at once as thumbnail
        workers). ``on_ready(sha256)``: a thumbnail of these bytes is now ready or failed for
        good (cached rows of their images are stale)."""
        self.settings = settings
        self.db = database
        self.storage = storage
        self.observer = observer if observer is not None else Observer()
        self.params = ThumbnailParams(
            size=settings.thumbnail_size,
            format=settings.thumbnail_format,
            quality=settings.thumbnail_quality,
        )
        self.params_key = self.params.key_suffix
        self.on_ready = on_ready
        self.engine = engine
        self.jobs = jobs
        self._jobs: dict[str, anyio.Event] = {}
        self._limiter = anyio.CapacityLimiter(settings.thumbnail_workers)
        self._stopping = False
        self._wake = anyio.Event()
        jobs.register(
            THUMBNAIL_JOB,
            self.run_job,
            lease=JOB_LEASE,
            concurrency=settings.thumbnail_workers,
            ahead=settings.thumbnail_jobs_ahead,
            swept=False,  # run_pending is the sweep's pass over them
        )

    def key_for(self, sha256: str) -> str:
        return thumbnail_key(sha256, self.params_key)

    # scheduling ---------------------------------------------------------------------------

    async def enqueue(self, conn: AsyncConnection, sha256: str) -> None:
        """Record the pending thumbnail and its job in the caller's transaction (the upload's)."""
        key = self.key_for(sha256)
        if await sql.add_pending(conn, key, sha256, self.params_key):
            await self.jobs.enqueue(conn, THUMBNAIL_JOB, key)

    async def record_rendered(
        self,
        conn: AsyncConnection,
        sha256: str,
        staged_key: str,
        rendered: RenderedThumbnail,
        *,
        new_blob: bool = False,
    ) -> str:
        """Instead of :meth:`enqueue`, in the upload's transaction: make the thumbnail the
        upload rendered (already written at ``staged_key``) the ready one, with no job.

        ``"kept"``: one was ready; its bytes are not touched (the staged object is the
        caller's to discard). ``"made"``: a new ready row, the bytes moved to its key.
        ``"readied"``: a pending, stalled or failed row is ready now and its job gone (cached
        rows of other images with these bytes are stale: the caller calls :attr:`on_ready`
        after the commit). ``"queued"``: storage refused the move; a pending row and its job,
        as :meth:`enqueue` records them. ``new_blob``: the caller inserted the blob row in this
        transaction, so no thumbnail row can exist yet (one query less).
        """
        key = self.key_for(sha256)
        status = None if new_blob else await sql.lock_status(conn, key)
        if status == "ready":
            return "kept"
        try:
            # Onto the content-addressed key while the row is locked: a concurrent render of
            # the same bytes makes the same thumbnail, and nothing reads a row not ready.
            await self.storage.move(staged_key, key)
        except (StorageError, OSError) as exc:
            log.warning("thumbnail %s not stored with its upload (%s); a job will", key, exc)
            await self.enqueue(conn, sha256)
            return "queued"
        size, width, height = len(rendered.data), rendered.width, rendered.height
        if status is None:
            await sql.add_ready(
                conn,
                key,
                sha256,
                self.params_key,
                content_type=rendered.content_type,
                size=size,
                width=width,
                height=height,
            )
            return "made"
        await sql.mark_ready(
            conn, key, content_type=rendered.content_type, size=size, width=width, height=height
        )
        await jobs_sql.finish(conn, THUMBNAIL_JOB, key)
        return "readied"

    async def adopt(self, limit: int = 1000) -> int:
        """Give a job to every row still to render that has none; how many got one."""
        async with self.db.connect() as conn:
            keys = await sql.without_job(conn, self.params_key, THUMBNAIL_JOB, limit)
        if not keys:
            return 0
        async with self.db.transaction() as conn:
            added = await jobs_sql.insert_missing(conn, THUMBNAIL_JOB, keys, utcnow())
        if added:
            log.info("%d pending thumbnail(s) had no job; queued them", added)
            self.jobs.wake()
        return added

    async def run_forever(self, interval: float = 30.0) -> None:
        """Adopt rows without a job at start and then every ``interval`` s, until :meth:`stop`
        (the job runner renders them)."""
        while not self._stopping:
            try:
                await self.adopt()
            except Exception:
                log.exception(
                    "looking for thumbnails without a job failed; retrying in %.0f s", interval
                )
            with anyio.move_on_after(interval):
                await self._wake.wait()

    async def stop(self) -> None:
        """Stop adopting and wake the loop so it ends (the job runner stops on its own)."""
        self._stopping = True
        self._wake.set()

    async def run_pending(
        self, limit: int = 100, progress: Callable[[str, int, int | None], None] | None = None
    ) -> int:
        """Run every due thumbnail job now, one after another (the sweep); how many became
        ready."""
        await self.adopt()
        due = await self.jobs.due(THUMBNAIL_JOB, limit)
        made = 0
        for done, key in enumerate(due, 1):
            if self._stopping:
                break
            before = await self._row_by_key(key)
            await self.jobs.run_one(THUMBNAIL_JOB, key)
            after = await self._row_by_key(key)
            made += (
                before is not None
                and before["status"] != "ready"
                and after is not None
                and after["status"] == "ready"
            )
            if progress is not None:
                progress("thumbnails", done, len(due))
        return made

    async def run_job(self, key: str) -> bool:
        """The job handler: render unless the row says it is done; the row's outcome is the
        job's (the row keeps the attempts and the back-off, so requests and jobs share them).
        True when the render finished the job itself (its row went with the thumbnail's)."""
        row = await self._row_by_key(key)
        if row is not None and row["status"] in sql.RETRIED:
            try:
                if await self.render(row["sha256"], row=row):
                    return True  # made: the job's row went in the same transaction
            except ChitramError as exc:
                log.info("thumbnail for %s not made yet: %s", row["sha256"], exc.message)
            row = await self._row_by_key(key)
        if row is None or row["status"] == "ready":
            return False  # made elsewhere, or the image was deleted
        reason = row["error"] or "the thumbnail could not be made"
        if row["status"] == "failed":
            raise JobFailed(reason)
        when = row["next_attempt_at"]
        delay = max((when - utcnow()).total_seconds(), 0.0) if when is not None else 0.0
        raise RetryLater(reason, delay=delay)

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

    async def counts(self) -> dict[tuple[str, str], int]:
        """Thumbnails by ``("thumbnail", status)``, every status present (zeros included)."""
        async with self.db.connect() as conn:
            found = await sql.counts(conn)
        counts = {(THUMBNAIL_JOB, state): 0 for state in STATES}
        counts.update({(THUMBNAIL_JOB, status): n for status, n in found.items()})
        return counts

    async def _row(self, sha256: str) -> dict[str, Any] | None:
        return await self._row_by_key(self.key_for(sha256))

    async def _row_by_key(self, key: str) -> dict[str, Any] | None:
        async with self.db.connect() as conn:
            return await sql.get(conn, key)

    async def render(
        self, sha256: str, *, force: bool = False, row: dict[str, Any] | None = None
    ) -> bool:
        """Make the thumbnail for ``sha256`` unless it exists; one job per key per process.
        ``row``: its thumbnail row as the caller has just read it (saves reading it again).
        True when this call made it ready."""
        key = self.key_for(sha256)
        running = self._jobs.get(key)
        if running is not None:
            await running.wait()
            return False
        done = self._jobs[key] = anyio.Event()
        try:
            with job_context("thumbnail", key):
                return await self._render(sha256, key, force=force, row=row)
        finally:
            del self._jobs[key]
            done.set()

    async def _render(
        self, sha256: str, key: str, *, force: bool, row: dict[str, Any] | None
    ) -> bool:
        if row is None:
            async with self.db.connect() as conn:
                exists = await blobs_sql.exists(conn, sha256)
                row = await sql.get(conn, key)
            if not exists:
                return False  # the image was deleted meanwhile
        # (A thumbnail row names its blob's row: with a row, the blob's row was there too, and
        # the transaction below checks again before marking it ready.)
        if row is None:
            async with self.db.transaction() as conn:
                await self.enqueue(conn, sha256)
        elif row["status"] == "ready" or (row["status"] == "failed" and not force):
            return False
        try:
            # The job reads the file itself: the server never holds the original whole.
            # Background renders: at most ``thumbnail_workers`` at once; a request waiting
            # for its thumbnail (force) goes first.
            limited: AbstractAsyncContextManager[Any] = nullcontext() if force else self._limiter
            with self.observer.image_work("thumbnail"):
                async with limited, local_file(self.storage, blob_key(sha256)) as data:
                    rendered = await render_thumbnail_async(
                        data,
                        self.params,
                        engine=self.engine,
                        max_pixels=self.settings.max_pixels,
                        timeout=self.settings.decode_timeout,
                        max_scans=self.settings.jpeg_max_scans,
                        background=not force,
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
        async with self.db.one_statement() as conn:
            # Ready only while the image's bytes are still recorded, and no job left either
            # way (one statement on PostgreSQL).
            ready = await sql.mark_ready(
                conn,
                key,
                content_type=rendered.content_type,
                size=len(rendered.data),
                width=rendered.width,
                height=rendered.height,
                blob=sha256,
                finish=THUMBNAIL_JOB,
            )
            if not ready and not await blobs_sql.exists(conn, sha256):
                # Deleted while rendering: the bytes we wrote have no row; remove them.
                await self.storage.delete(key)
                return False
        await self.on_ready(sha256)
        return True

    async def _fail(
        self, sha256: str, key: str, reason: str, *, definite: bool, final: str = "stalled"
    ) -> None:
        async with self.db.transaction() as conn:
            before = await sql.attempts(conn, key)
            if before is None:
                return
            attempts = before + 1
            give_up = definite or attempts >= MAX_ATTEMPTS
            # "failed": the bytes cannot be thumbnailed. "stalled": storage kept failing; the
            # job retries after a long back-off and a request retries at once.
            status = "failed" if definite else (final if give_up else "pending")
            delay = min(BASE_BACKOFF**attempts, MAX_BACKOFF)
            await sql.record_failure(
                conn,
                key,
                attempts=attempts,
                status=status,
                error=reason[:1000],
                next_attempt_at=utcnow() + timedelta(seconds=delay),
            )
        if give_up:
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
