"""``ImageService``: the ``chitram.images`` facade over the image flows.

Each flow lives in its own module and is composed here once from the parts it is given:

- upload: the ingest pipeline, :mod:`chitram_core.ingest`;
- ``get``, the original's and the thumbnail's bytes: :mod:`chitram_core.reads`, over the one
  ranged read of :mod:`chitram_core.streaming`;
- ``list``: :mod:`chitram_core.listing`; ``delete``: :mod:`chitram_core.deletes`;
- variants: :class:`~chitram_core.variants.VariantService` (:class:`NoVariants` without one).

Nothing here decides anything: every method hands over to its flow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from chitram_core.cache import ImageCache
from chitram_core.cache.small import SMALL_OBJECTS_BUDGET, SmallObjects
from chitram_core.collector import ByteRemover
from chitram_core.db import Database
from chitram_core.deletes import Deletes
from chitram_core.engine.base import Engine
from chitram_core.engine.inline import InlineEngine
from chitram_core.errors import ServiceUnavailable
from chitram_core.ingest import BodySource, build_ingest
from chitram_core.ingest.record import RecordHook
from chitram_core.intake import UploadSource
from chitram_core.listing import Listing
from chitram_core.models import Image, Page, Principal, Thumbnail, Variant
from chitram_core.moderation import Moderator
from chitram_core.observe import Observer
from chitram_core.quotas import Quotas
from chitram_core.reads import ImageReads, ThumbnailReads
from chitram_core.settings import Settings
from chitram_core.storage import Storage
from chitram_core.streaming import ObjectReader
from chitram_core.thumbnailer import Thumbnailer

if TYPE_CHECKING:
    from chitram_core.fetch import Fetcher
    from chitram_core.images.variants import VariantSpec

__all__ = ["ImageService", "NoVariants", "RecordHook", "Variants"]


class Variants(Protocol):
    """What the facade asks of :class:`~chitram_core.variants.VariantService`."""

    def url(
        self,
        image_id: str,
        *,
        width: int | None = None,
        height: int | None = None,
        fit: str = "contain",
        format: str | None = None,
        quality: int | None = None,
    ) -> str: ...

    async def get(
        self, image: Image, spec: VariantSpec, *, accept: str | None = None
    ) -> Variant: ...

    def stream(
        self, variant: Variant, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]: ...


class NoVariants:
    """An instance without variants: every variant request is 503."""

    def url(
        self,
        image_id: str,
        *,
        width: int | None = None,
        height: int | None = None,
        fit: str = "contain",
        format: str | None = None,
        quality: int | None = None,
    ) -> str:
        raise _no_variants()

    async def get(self, image: Image, spec: VariantSpec, *, accept: str | None = None) -> Variant:
        raise _no_variants()

    def stream(
        self, variant: Variant, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        raise _no_variants()


def _no_variants() -> ServiceUnavailable:
    return ServiceUnavailable("Variants are not available in this instance")


class ImageService:
    """Every collaborator is given to the constructor; none is set afterwards.

    ``thumbnailer``: thumbnails made with the upload, as jobs, and on request. ``engine``: the
    image work (an :class:`InlineEngine`, worker threads, when not given). ``cache``: the
    cache-aside of image rows (``DISABLED`` when not given). ``variants``: variant reads.
    ``record_hooks`` run in the upload's transaction (tagging's job); ``wake`` (the
    thumbnailer's job runner's when not given) is called once after an upload that recorded a
    job (``tagging``: each does). Without ``remover`` and
    ``small_objects`` the service makes its own.
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        storage: Storage,
        *,
        thumbnailer: Thumbnailer,
        cache: ImageCache | None = None,
        engine: Engine | None = None,
        variants: Variants | None = None,
        record_hooks: Sequence[RecordHook] = (),
        wake: Callable[[], None] | None = None,
        tagging: bool = False,
        remover: ByteRemover | None = None,
        small_objects: SmallObjects | None = None,
        observer: Observer | None = None,
        quotas: Quotas | None = None,
        moderators: Sequence[Moderator] = (),
        fetcher: Fetcher | None = None,
    ) -> None:
        self.settings = settings
        self._fetcher = fetcher
        self.db = database
        self.storage = storage
        self.cache = cache if cache is not None else ImageCache(None)
        self.engine: Engine = engine if engine is not None else InlineEngine.from_settings(settings)
        self.thumbnailer = thumbnailer
        self.thumbnail_params = thumbnailer.params_key
        self.variants: Variants = variants if variants is not None else NoVariants()
        self.record_hooks = tuple(record_hooks)
        self.remover = remover if remover is not None else ByteRemover(database, storage)
        self.small_objects = (
            small_objects if small_objects is not None else SmallObjects(SMALL_OBJECTS_BUDGET)
        )
        self.quotas = quotas if quotas is not None else Quotas(settings, database)
        self.ingest = build_ingest(
            settings,
            database,
            storage,
            quotas=self.quotas,
            engine=self.engine,
            thumbnailer=thumbnailer,
            record_hooks=self.record_hooks,
            wake=wake if wake is not None else thumbnailer.jobs.wake,
            tagging=tagging,
            observer=observer if observer is not None else thumbnailer.observer,
            moderators=moderators,
        )
        self.objects = ObjectReader(storage, self.small_objects)
        self.reads = ImageReads(database, self.cache, self.objects, self.thumbnail_params)
        self.thumbnails = ThumbnailReads(thumbnailer, self.objects)
        self.listing = Listing(database, self.thumbnail_params)
        self.deletes = Deletes(database, self.cache, self.objects, self.thumbnails, self.remover)

    # upload -------------------------------------------------------------------------------

    async def upload(
        self,
        source: UploadSource,
        *,
        filename: str | None = None,
        owner: Principal | None = None,
        max_bytes: int | None = None,
    ) -> Image:
        """Validate, store and record an image (see :mod:`chitram_core.ingest`)."""
        return await self.ingest.upload(
            BodySource(source, filename=filename, owner=owner), max_bytes=max_bytes
        )

    async def upload_from_url(
        self,
        url: str,
        *,
        owner: Principal | None = None,
        max_bytes: int | None = None,
        arrived: Callable[[], Awaitable[None]] | None = None,
    ) -> Image:
        """Fetch ``url`` (guarded: see :mod:`chitram_core.fetch`) and upload what it answers,
        through the same pipeline as :meth:`upload`. ``arrived`` is awaited once the whole
        body has been received, before the work on it."""
        from chitram_core.fetch import UrlSource

        async with self.fetcher().open(url) as fetched:
            return await self.ingest.upload(
                UrlSource(fetched, owner=owner, arrived=arrived), max_bytes=max_bytes
            )

    def fetcher(self) -> Fetcher:
        """The URL fetcher (made on first use: it needs httpx, ``chitram[fetch]``)."""
        if self._fetcher is None:
            try:
                from chitram_core.fetch import Fetcher
            except ImportError as exc:
                raise ServiceUnavailable(
                    "Upload by URL is not installed on this server (pip install 'chitram[fetch]')",
                    retry_after=3600,
                ) from exc
            self._fetcher = Fetcher(self.settings)
        return self._fetcher

    # reading ------------------------------------------------------------------------------

    async def get(self, image_id: str) -> Image:
        image, _ = await self.reads.get_with_cache_status(image_id)
        return image

    async def get_with_cache_status(self, image_id: str) -> tuple[Image, str]:
        """The image and whether the cache served it: ``HIT``, ``MISS`` or ``DISABLED``."""
        return await self.reads.get_with_cache_status(image_id)

    def held(self, image_id: str) -> Image | None:
        """The image when the cache holds its row in this process, with no I/O and no waiting
        (a ``HIT``: the memory cache, or Redis's near cache while it is trusted), else None;
        :meth:`get_with_cache_status` is then the lookup to make. For a server that answers a
        warm read without scheduling a task."""
        return self.reads.held(image_id)

    async def read(
        self, image_id: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of the stored image (``end`` exclusive, clamped)."""
        image = await self.get(image_id)
        async for chunk in self.reads.stream(image, start, end):
            yield chunk

    def stream(self, image: Image, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream a range of an image already looked up (no database round trip)."""
        return self.reads.stream(image, start, end)

    def small_object(self, image: Image) -> bytes | None:
        """The image's bytes when this process holds them in memory (no I/O), else None.

        Only for an image just looked up: the lookup is what refuses a deleted image.
        """
        return self.reads.small_object(image)

    async def thumbnail(self, image_id: str) -> Thumbnail:
        """The image's thumbnail, made now if it is missing (concurrent callers share the job)."""
        return await self.thumbnails.thumbnail_of(await self.get(image_id))

    async def thumbnail_of(self, image: Image) -> Thumbnail:
        """:meth:`thumbnail` for an image just looked up (no second lookup)."""
        return await self.thumbnails.thumbnail_of(image)

    def held_thumbnail(self, image: Image) -> Thumbnail | None:
        """The ready thumbnail of an image just looked up when this process remembers it (no
        I/O), else None: :meth:`thumbnail_of` then finds or makes it."""
        return self.thumbnails.held(image)

    def small_thumbnail(self, thumb: Thumbnail) -> bytes | None:
        """The thumbnail's bytes when this process holds them in memory (no I/O), else None."""
        return self.thumbnails.small_thumbnail(thumb)

    def stream_thumbnail(
        self, thumb: Thumbnail, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a range of a thumbnail (the same ranged read as :meth:`stream`)."""
        return self.thumbnails.stream(thumb, start, end)

    # variants -----------------------------------------------------------------------------

    def variant_url(
        self,
        image_id: str,
        *,
        width: int | None = None,
        height: int | None = None,
        fit: str = "contain",
        format: str | None = None,
        quality: int | None = None,
    ) -> str:
        """A signed relative URL of a variant, for host templates (``<img srcset>``)."""
        return self.variants.url(
            image_id, width=width, height=height, fit=fit, format=format, quality=quality
        )

    async def variant_info(
        self, image_id: str, spec: str, *, accept: str | None = None
    ) -> tuple[Image, Variant]:
        """The image and its rendered variant (made now if missing); no signature is needed
        from the SDK, which is trusted."""
        from chitram_core.images.variants import parse_spec

        parsed = parse_spec(spec)
        image = await self.get(image_id)
        return image, await self.variants.get(image, parsed, accept=accept)

    async def variant(
        self, image_id: str, spec: str, *, accept: str | None = None
    ) -> AsyncIterator[bytes]:
        """The variant's bytes as an async stream (rendered first if needed)."""
        _, found = await self.variant_info(image_id, spec, accept=accept)
        async for chunk in self.variants.stream(found):
            yield chunk

    # listing and deleting -----------------------------------------------------------------

    async def list(
        self,
        owner: Principal,
        *,
        limit: int = 20,
        cursor: str | None = None,
        tags: Sequence[str] | None = None,
        query: str | None = None,
    ) -> Page:
        """The owner's images, newest first, by keyset cursor (stable under inserts); only
        those with every tag in ``tags`` and, with ``query``, a filename containing it or a
        tag starting with it."""
        return await self.listing.list(owner, limit=limit, cursor=cursor, tags=tags, query=query)

    async def delete(
        self,
        image_id: str,
        *,
        principal: Principal | None = None,
        delete_token: str | None = None,
    ) -> None:
        """Delete by owner or delete token (v1 order); the row goes even if storage fails."""
        await self.deletes.delete(image_id, principal=principal, delete_token=delete_token)
