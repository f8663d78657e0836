"""The upload's one image-engine job: structure scan, verify, placeholders, thumbnail; then the
thumbnail staged.

:class:`ImageJob` sends the stored bytes to the engine (worker processes, or threads with
:class:`~chitram_core.engine.inline.InlineEngine`: the same call) as one ``upload_image`` job:
a small file's bytes, already in memory, in the message; a larger one as the file the job reads
(:func:`~chitram_core.engine.local.local_file`), so the server streams it and never holds it.
Its structure scan (JPEG scans counted, the metadata edits planned) runs there too, never on
the event loop. Verification failing is the upload's failure (``INVALID_IMAGE``).
The placeholders and the thumbnail are added to the job only while it still fits the memory
budget; whatever the job did not make is made apart: the placeholders by a job of their own, the
thumbnail by a background job recorded with the upload. :class:`StageThumbnail` writes a
rendered thumbnail to a temporary object for the record to move onto its key.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from chitram_core.engine.base import Engine
from chitram_core.engine.local import local_file
from chitram_core.engine.render import placeholders_async
from chitram_core.engine.work import JobInput, decode_cost, upload_image, variant_cost
from chitram_core.images.formats import ImageInfo
from chitram_core.images.metadata import FrameBudget
from chitram_core.images.placeholders import PLACEHOLDER_SIDE
from chitram_core.images.thumbnails import ThumbnailParams
from chitram_core.ingest.store import temporary_key
from chitram_core.ingest.upload import Staged, Upload
from chitram_core.observe import Observer
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError

log = logging.getLogger(__name__)

THUMBNAIL_BUDGET_SHARE = 4
"""The upload's engine job renders the thumbnail only while the job then reserves at most
1/4 of the image-work memory budget: a large image's thumbnail (a 40 MP PNG reserves ~490 MB)
stays a background job rather than holding the budget while other uploads wait for it."""
THUMBNAIL_TIME_SHARE = 0.25
"""... and only when the job's verification took less than this share of the decode timeout
(past the timeout the job is killed, which would fail the upload for its thumbnail)."""


class ImageJob:
    """``thumbnail``: the params to render the thumbnail with in the job, None to leave every
    thumbnail to a background job (``CHITRAM_THUMBNAIL_AT_UPLOAD=false``)."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        engine: Engine,
        *,
        thumbnail: ThumbnailParams | None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.observer = observer if observer is not None else Observer()
        self.storage = storage
        self.engine = engine
        self.thumbnail = thumbnail

    async def run(self, upload: Upload) -> None:
        if upload.content is not None:
            await self._run(upload, upload.content)
            return
        # A large file: the job reads it from disk; the server never holds it whole.
        async with local_file(self.storage, upload.stored_key) as stored:
            await self._run(upload, stored)

    async def _run(self, upload: Upload, content: JobInput) -> None:
        info = upload.header()
        wanted = self.settings.placeholders
        memory, placeholders, params = job_parts(
            self.engine.budget.total,
            info,
            size=upload.size,
            progressive=upload.progressive,
            placeholders=wanted,
            thumbnail=self.thumbnail,
        )
        with self.observer.image_work("verify"):
            work = await self.engine.run(
                upload_image,
                content,
                info,
                max_pixels=self.settings.max_pixels,
                max_scans=self.settings.jpeg_max_scans,
                strip=self.settings.strip_metadata,
                placeholders=placeholders,
                thumbnail=params,
                thumbnail_within=self.settings.decode_timeout * THUMBNAIL_TIME_SHARE,
                frames=FrameBudget(self.settings.max_frames, self.settings.max_animation_pixels),
                memory=memory,
                op="verify",
                owner=_owner(upload),
            )
        upload.edits = work.edits
        upload.thumbnail = work.thumbnail
        if placeholders:
            got = work.placeholders
            upload.placeholders = (
                (got.blurhash, got.dominant_color) if got is not None else (None, None)
            )
        elif wanted:  # the job had no room for them: a job of their own
            upload.placeholders = await placeholders_async(
                content,
                upload.size,
                engine=self.engine,
                max_pixels=self.settings.max_pixels,
                max_scans=self.settings.jpeg_max_scans,
                owner=_owner(upload),
            )


def _owner(upload: Upload) -> str | None:
    """Whose work this is, for the engine's fair admission (None: anonymous uploads share)."""
    owner = upload.source.owner
    return f"user:{owner.user_id}" if owner is not None else None


def job_parts(
    budget: int,
    info: ImageInfo,
    *,
    size: int,
    progressive: bool,
    placeholders: bool,
    thumbnail: ThumbnailParams | None,
) -> tuple[int, bool, ThumbnailParams | None]:
    """The upload job's memory reservation, whether it computes the placeholders and the
    params it renders the thumbnail with (None: a job makes it). Each part is added only
    while the job still fits: the placeholders within ``budget``, the thumbnail within
    ``THUMBNAIL_BUDGET_SHARE`` of it. The decodes run one after the other, so the job
    reserves the largest of their costs, not their sum."""
    memory = decode_cost(info, file_size=size, progressive=progressive)
    if placeholders:
        side = PLACEHOLDER_SIDE * 2
        cost = variant_cost(info, file_size=size, progressive=progressive, side=side)
        placeholders = max(memory, cost) <= budget
        memory = max(memory, cost) if placeholders else memory
    if thumbnail is not None:
        cost = decode_cost(
            info, file_size=size, progressive=progressive, thumbnail_size=thumbnail.size
        )
        if max(memory, cost) <= budget // THUMBNAIL_BUDGET_SHARE:
            memory = max(memory, cost)
        else:
            thumbnail = None
    return memory, placeholders, thumbnail


class StageThumbnail:
    """A rendered thumbnail to a temporary object; storage refusing it only means a background
    job will make the thumbnail."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def run(self, upload: Upload) -> None:
        rendered = upload.thumbnail
        if rendered is None:
            return
        key = temporary_key(upload)

        async def body() -> AsyncIterator[bytes]:
            yield rendered.data

        try:
            await self.storage.write(key, body())
        except (StorageError, OSError) as exc:
            log.warning("the thumbnail made with an upload was not stored (%s); a job will", exc)
            return
        upload.staged = Staged(key, rendered)
