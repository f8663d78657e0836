"""Deleting an image: by its owner or its delete token, the row first, then its bytes."""

from __future__ import annotations

import logging

from chitram_core.cache import ImageCache
from chitram_core.collector import ByteRemover
from chitram_core.db import Database, blobs, images, tags
from chitram_core.delete_policy import authorize_delete
from chitram_core.errors import ImageNotFound, ServiceUnavailable
from chitram_core.models import Principal
from chitram_core.reads import ThumbnailReads, is_uuid
from chitram_core.streaming import ObjectReader

log = logging.getLogger(__name__)


class Deletes:
    def __init__(
        self,
        database: Database,
        cache: ImageCache,
        objects: ObjectReader,
        thumbnails: ThumbnailReads,
        remover: ByteRemover,
    ) -> None:
        self.db = database
        self.cache = cache
        self.objects = objects
        self.thumbnails = thumbnails
        self.remover = remover

    async def delete(
        self,
        image_id: str,
        *,
        principal: Principal | None = None,
        delete_token: str | None = None,
    ) -> None:
        """Delete by owner or delete token (v1 order); the row goes even if storage fails."""
        if not is_uuid(image_id):
            raise ImageNotFound(image_id=image_id)
        async with self.db.transaction() as conn:
            row = await images.lock(conn, image_id)
            if row is None:
                raise ImageNotFound(image_id=image_id)
            authorize_delete(row["owner_id"], row["delete_token_hash"], principal, delete_token)
            # The cascade lowers the counts of the image's tags: their rows first, in id order.
            await tags.lock_tags(conn, image_id)
            await images.delete(conn, image_id)
            keys = await blobs.release(conn, row["sha256"])
        if keys:  # the last image of these bytes: they, and their thumbnails, go
            self.objects.forget(row["sha256"], *keys)
        self.thumbnails.forget(image_id)
        await self.cache.invalidate_image(image_id)
        # The delete is committed: an outage now must not answer 503 for it (the caller would
        # keep an image that is gone). Bytes not removed stay queued for the sweep.
        for key in keys:
            try:
                await self.remover.remove(key)
            except ServiceUnavailable as exc:
                log.warning("%s stays queued for the sweep: %s", key, exc)
