"""Reading images: the cached row lookup, the original's bytes, the thumbnail and its bytes.

Every read starts with the image's row (cache-aside through :class:`ImageCache`, which is
``DISABLED`` without a cache): that lookup is what refuses a deleted image, so what follows
may serve bytes remembered in memory. Bytes go through the one ranged read of
:class:`~chitram_core.streaming.ObjectReader`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator

from chitram_core.cache import ImageCache
from chitram_core.cache.small import Lru
from chitram_core.db import Database, images
from chitram_core.errors import ChitramError, ImageNotFound, ServiceUnavailable
from chitram_core.models import Image, Thumbnail
from chitram_core.storage import StorageKeyNotFound, blob_key
from chitram_core.streaming import ObjectReader, StoredObject
from chitram_core.thumbnailer import Thumbnailer

log = logging.getLogger(__name__)

READY_THUMBNAILS = 4096
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ImageReads:
    """``get`` and the original's bytes."""

    def __init__(
        self, database: Database, cache: ImageCache, objects: ObjectReader, params_key: str
    ) -> None:
        self.db = database
        self.cache = cache
        self.objects = objects
        self.params_key = params_key

    async def get_with_cache_status(self, image_id: str) -> tuple[Image, str]:
        """The image and whether the cache served it: ``HIT``, ``MISS`` or ``DISABLED``."""
        if not is_uuid(image_id):
            raise ImageNotFound(image_id=image_id)
        return await self.cache.get_or_load(image_id, self._load)

    def held(self, image_id: str) -> Image | None:
        """The image when the cache holds its row in this process (a ``HIT`` with no I/O and no
        waiting), else None: then :meth:`get_with_cache_status` is the lookup to make. (No id
        check first: only ids that passed it are ever cached, so any other simply misses.)"""
        return self.cache.local_image(image_id)

    async def _load(self, image_id: str) -> Image:
        async with self.db.connect() as conn:
            image = await images.get(conn, image_id, self.params_key)
        if image is None:
            raise ImageNotFound(image_id=image_id)
        return image

    def stream(self, image: Image, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """A range of an image already looked up (no database round trip)."""

        def missing(exc: StorageKeyNotFound) -> ChitramError:
            log.error("image %s has a row but no bytes at %s", image.id, blob_key(image.sha256))
            return ImageNotFound("The image's bytes are missing", image_id=image.id)

        return self.objects.stream(_original(image), start, end, missing=missing)

    def small_object(self, image: Image) -> bytes | None:
        """The image's bytes when this process holds them in memory (no I/O), else None.

        Only for an image just looked up: the lookup is what refuses a deleted image.
        """
        return self.objects.held(image.sha256, image.file_size)


class ThumbnailReads:
    """The thumbnail of an image just looked up, and its bytes.

    A ready thumbnail is remembered by image id: while the image lives its blob does (ids never
    come back), and a blob's ready thumbnail row never changes, so only the image's lookup,
    done by the caller on every request, decides whether it may be served.
    """

    def __init__(self, thumbnailer: Thumbnailer, objects: ObjectReader) -> None:
        self.thumbnailer = thumbnailer
        self.objects = objects
        self.ready: Lru[Thumbnail] = Lru(READY_THUMBNAILS)

    async def thumbnail_of(self, image: Image) -> Thumbnail:
        """The image's thumbnail, made now if it is missing (concurrent callers share the job)."""
        ready = self.held(image)
        if ready is not None:
            return ready
        thumb = await self.thumbnailer.get(image)
        self.ready.discard(image.id)
        self.ready.put(image.id, thumb)
        return thumb

    def held(self, image: Image) -> Thumbnail | None:
        """The image's ready thumbnail when this process remembers it (no I/O), else None."""
        ready = self.ready.get(image.id)
        if ready is not None and ready.key == self.thumbnailer.key_for(image.sha256):
            return ready
        return None

    def small_thumbnail(self, thumb: Thumbnail) -> bytes | None:
        """The thumbnail's bytes when this process holds them in memory (no I/O), else None."""
        return self.objects.in_memory(_thumbnail(thumb))

    def stream(
        self, thumb: Thumbnail, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        def missing(exc: StorageKeyNotFound) -> ChitramError:
            self.ready.discard(thumb.image_id)
            return ServiceUnavailable("The thumbnail is being remade", retry_after=2)

        return self.objects.stream(_thumbnail(thumb), start, end, missing=missing)

    def forget(self, image_id: str) -> None:
        """The image is deleted."""
        self.ready.discard(image_id)


def _original(image: Image) -> StoredObject:
    return StoredObject(blob_key(image.sha256), image.file_size, image.sha256)


def _thumbnail(thumb: Thumbnail) -> StoredObject:
    return StoredObject(thumb.key, thumb.size, thumb.key)


def is_uuid(value: str) -> bool:
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):  # the ids we hand out
        return True
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return len(value) == 36
