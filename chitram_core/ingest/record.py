"""The record: one transaction makes the upload exist, or nothing of it does.

In order: the owner's quota charged (their row locked, so concurrent uploads of one user are
counted one after the other), the blob row claimed (new content) or its refcount bumped
(deduplicated: the bytes are already stored), the image row, the durable jobs of the record
hooks (tagging), the bytes moved from their temporary object onto the content-addressed
``blobs/...`` key when the blob is new (inside the transaction: a failed move records nothing,
and a concurrent remover of the same key is held off by the blob row's lock), and last the
thumbnail: the staged one recorded ready, else a pending row and its background job.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db import Database, blobs, images
from chitram_core.db.tables import utcnow
from chitram_core.delete_policy import hash_token
from chitram_core.ingest.upload import Upload
from chitram_core.intake import clean_filename
from chitram_core.models import Image
from chitram_core.quotas import Quotas
from chitram_core.storage import Storage, blob_key
from chitram_core.thumbnailer import Thumbnailer

RecordHook = Callable[[AsyncConnection, str], Awaitable[None]]
"""``hook(conn, image_id)``, run in the upload's transaction: a durable job for the new image."""

READY = ("made", "readied", "kept")
"""Thumbnail outcomes after which the image's thumbnail is ready."""
MOVED = ("made", "readied")
"""... and those that moved the staged thumbnail onto its key."""


class Record:
    def __init__(
        self,
        database: Database,
        storage: Storage,
        thumbnailer: Thumbnailer,
        hooks: Sequence[RecordHook] = (),
        *,
        quotas: Quotas | None = None,
    ) -> None:
        self.quotas = quotas
        self.db = database
        self.storage = storage
        self.thumbnailer = thumbnailer
        self.hooks = tuple(hooks)

    async def run(self, upload: Upload) -> None:
        info = upload.header()
        sha256, placeholders, owner = upload.sha256, upload.placeholders, upload.source.owner
        image_id = str(uuid.uuid4())
        delete_token = None if owner else secrets.token_urlsafe(32)
        created = utcnow()
        name = clean_filename(upload.source.filename, info.format)
        async with self.db.transaction() as conn:
            if self.quotas is not None and owner is not None:  # first: it locks the user's row
                await self.quotas.charge(conn, owner.user_id, upload.size)
            is_new = await blobs.claim(
                conn,
                sha256=sha256,
                storage_key=blob_key(sha256),
                size=upload.size,
                content_type=info.format.mime,
                width=info.width,
                height=info.height,
                blurhash=placeholders[0],
                dominant_color=placeholders[1],
            )
            if not is_new and placeholders[0] is not None:
                await blobs.fill_placeholders(conn, sha256, *placeholders)
            await images.insert(
                conn,
                image_id=image_id,
                owner_id=owner.user_id if owner else None,
                filename=name,
                sha256=sha256,
                created_at=created,
                delete_token_hash=hash_token(delete_token) if delete_token else None,
            )
            for hook in self.hooks:  # durable jobs for the new image (e.g. tagging)
                await hook(conn, image_id)
            if is_new:
                await self.storage.move(upload.stored_key, blob_key(sha256))
            # Last: a failure before it leaves the staged thumbnail a temporary object.
            made = await self._thumbnail(conn, upload, new_blob=is_new)
        upload.new_blob, upload.thumbnail_outcome = is_new, made
        moved = [upload.stored_key] if is_new else []
        if upload.staged is not None and made in MOVED:
            moved.append(upload.staged.key)
        upload.moved = tuple(moved)
        upload.recorded = Image(
            id=image_id,
            filename=name,
            content_type=info.format.mime,
            file_size=upload.size,
            width=info.width,
            height=info.height,
            sha256=sha256,
            created_at=created,
            owner_id=owner.user_id if owner else None,
            delete_token=delete_token,
            blurhash=placeholders[0],
            dominant_color=placeholders[1],
            thumbnail_ready=made in READY,
        )

    async def _thumbnail(self, conn: AsyncConnection, upload: Upload, *, new_blob: bool) -> str:
        """The staged thumbnail recorded ready, else a pending row and its job; the outcome
        (see :meth:`Thumbnailer.record_rendered`; ``"queued"`` for a job)."""
        staged = upload.staged
        if staged is None:
            await self.thumbnailer.enqueue(conn, upload.sha256)
            return "queued"
        return await self.thumbnailer.record_rendered(
            conn, upload.sha256, staged.key, staged.rendered, new_blob=new_blob
        )
