"""ImageService: the upload, read, list and delete flows, orchestrating storage, DB and cache.

The upload streams: the intake (``chitram_core.intake``) counts, hashes and sniffs each chunk
while it is written to a temporary storage object. Only then is anything checked that needs
the whole file, and only then does a row appear. A failure at any step removes the temporary
object, so no row ever points at missing bytes; bytes that a crash leaves behind are found by
the sweep (``chitram_core.collector``).

With an image engine, one engine job per upload verifies the bytes, computes the placeholders
and renders the thumbnail; the thumbnail is written to a temporary object before the record
transaction and recorded ready in it, so the common upload queues no thumbnail job. When that
job would not fit the memory budget or the render fails, the thumbnail is a background job.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core import observe
from chitram_core.cache import ImageCache
from chitram_core.cache.small import SMALL_OBJECT_BYTES, SMALL_OBJECTS_BUDGET, SmallObjects
from chitram_core.collector import ByteRemover
from chitram_core.db import Database, blobs, images
from chitram_core.db.tables import utcnow
from chitram_core.delete_policy import authorize_delete, hash_token
from chitram_core.errors import (
    ChitramError,
    ImageNotFound,
    InternalError,
    InvalidRequest,
    ServiceUnavailable,
    check_limit,
)
from chitram_core.images.formats import HEAD_BYTES, check_limits, probe, verify
from chitram_core.images.metadata import Edit, apply_edits
from chitram_core.intake import (
    READ_CHUNK,
    Intake,
    UploadSource,
    check_unstreamed,
    chunks,
    clean_filename,
)
from chitram_core.models import Image, Page, Principal, Thumbnail, Variant
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError, StorageKeyNotFound, blob_key
from chitram_core.tags.search import image_filters

if TYPE_CHECKING:
    from chitram_core.engine import ImageEngine
    from chitram_core.images.thumbnails import RenderedThumbnail, ThumbnailParams
    from chitram_core.thumbnailer import Thumbnailer
    from chitram_core.variants import VariantService

log = logging.getLogger(__name__)

READY_THUMBNAILS = 4096
THUMBNAIL_BUDGET_SHARE = 4
"""The upload's engine job renders the thumbnail only while the job then reserves at most
1/4 of the image-work memory budget: a large image's thumbnail (a 40 MP PNG reserves ~490 MB)
stays a background job rather than holding the budget while other uploads wait for it."""
THUMBNAIL_TIME_SHARE = 0.25
"""... and only when the job's verification took less than this share of the decode timeout
(past the timeout the job is killed, which would fail the upload for its thumbnail)."""
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@attrs.frozen
class _Verified:
    """What the upload's image work gave besides proving that the bytes decode."""

    content: bytes | None
    """The bytes when they were read (for a separate placeholders job)."""
    placeholders: tuple[str | None, str | None] | None = None
    """(blurhash, dominant colour) computed in the job ((None, None) when that failed); None
    when the job did not compute them."""
    thumbnail: RenderedThumbnail | None = None


@attrs.frozen
class _Staged:
    """A thumbnail rendered with the upload, written to a temporary object."""

    key: str
    rendered: RenderedThumbnail


@attrs.frozen
class _Recorded:
    image: Image
    moved: tuple[str, ...]
    """Temporary objects now under their final key (nothing left to remove)."""


RecordHook = Callable[[AsyncConnection, str], Awaitable[None]]
"""``hook(conn, image_id)``, run in the upload's transaction: a durable job for the new image."""


class ImageService:
    """Every collaborator is given to the constructor; none is set afterwards.

    ``thumbnailer``: with an ``engine`` the upload renders its thumbnail in its own engine job
    and records it ready (``CHITRAM_THUMBNAIL_AT_UPLOAD``); otherwise, or when that cannot
    be done, it records the thumbnail job in its transaction and schedules the render after
    it; reads show the thumbnail's state. ``variants``: placeholders at upload
    and variant reads. ``record_hooks`` run in the upload's transaction (tagging's job);
    ``on_uploaded`` is told of each upload after it is committed. Without ``remover`` and
    ``small_objects`` the service makes its own.
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        storage: Storage,
        *,
        cache: ImageCache | None = None,
        engine: ImageEngine | None = None,
        thumbnailer: Thumbnailer | None = None,
        variants: VariantService | None = None,
        record_hooks: Sequence[RecordHook] = (),
        on_uploaded: Callable[[Image], None] | None = None,
        remover: ByteRemover | None = None,
        small_objects: SmallObjects | None = None,
    ) -> None:
        self.settings = settings
        self.db = database
        self.storage = storage
        self.cache = cache
        self.engine = engine
        self.thumbnailer = thumbnailer
        self.thumbnail_params = thumbnailer.params_key if thumbnailer is not None else ""
        self.variants = variants
        self.record_hooks = tuple(record_hooks)
        self.on_uploaded = on_uploaded
        self.remover = remover if remover is not None else ByteRemover(database, storage)
        self.small_objects = (
            small_objects if small_objects is not None else SmallObjects(SMALL_OBJECTS_BUDGET)
        )
        # Ready thumbnails by image id: see ``thumbnail_of``.
        self._ready_thumbnails: OrderedDict[str, Thumbnail] = OrderedDict()

    # upload -------------------------------------------------------------------------------

    async def upload(
        self,
        source: UploadSource,
        *,
        filename: str | None = None,
        owner: Principal | None = None,
        max_bytes: int | None = None,
    ) -> Image:
        """Validate, store and record an image; see the module docstring for the flow."""
        limit = max_bytes or self.settings.max_upload_bytes
        intake = Intake(
            max_bytes=limit,
            strip=self.settings.strip_metadata,
            max_scans=self.settings.jpeg_max_scans,
        )
        tmp_key = f"tmp/{uuid.uuid4().hex}"
        written: list[str] = [tmp_key]

        async def counted() -> AsyncIterator[bytes]:
            async for chunk in chunks(source):
                intake.take(chunk)
                yield chunk

        try:
            try:
                await self.storage.write(tmp_key, counted())
            except StorageError as exc:
                raise InternalError("Storage is not accepting writes") from exc
            fmt = intake.finish()
            info = probe(bytes(intake.head))
            if info.format != fmt:
                raise InvalidRequest("The file's header does not match its format")
            check_limits(
                info, max_pixels=self.settings.max_pixels, max_dimension=self.settings.max_dimension
            )
            check_unstreamed(info, self.settings.max_pixels_unstreamed)
            sha256, size = intake.hasher.hexdigest(), intake.size
            stored_key = tmp_key
            edits: list[Edit] = intake.scanner.finish() if intake.scanner is not None else []
            # The whole file is usually in the head buffer already: no read back for verify.
            content: bytes | None = bytes(intake.head) if size <= len(intake.head) else None
            if edits:
                stored_key = f"tmp/{uuid.uuid4().hex}"
                written.append(stored_key)
                sha256, size, content = await self._rewrite(tmp_key, stored_key, edits)
            progressive = intake.scans.progressive if intake.scans is not None else False
            want_placeholders = self.variants is not None and self.settings.placeholders
            verified = await self._verify(
                stored_key,
                info,
                scanned=intake.scanner is not None,
                content=content,
                size=size,
                progressive=progressive,
                placeholders=want_placeholders,
            )
            placeholders = await self._placeholders(verified, size)
            staged = await self._stage_thumbnail(verified.thumbnail, written)
            recorded = await self._record(
                stored_key,
                sha256=sha256,
                size=size,
                info=info,
                filename=filename,
                owner=owner,
                placeholders=placeholders,
                thumbnail=staged,
            )
        except BaseException as exc:
            observe.observer.upload(_upload_result(exc))
            with anyio.CancelScope(shield=True):
                for key in written:
                    await self._discard(key)
            raise
        for key in written:
            if key not in recorded.moved:  # a moved object has nothing left to remove
                await self._discard(key)
        image = recorded.image
        if self.thumbnailer is not None:
            self.thumbnailer.schedule(image)
        if self.on_uploaded is not None:
            self.on_uploaded(image)
        return image

    async def _rewrite(
        self, src: str, dst: str, edits: list[Edit]
    ) -> tuple[str, int, bytes | None]:
        """Write the stripped copy; its hash, size and (when small) its bytes."""
        hasher = hashlib.sha256()
        size = 0
        kept: bytearray | None = bytearray()

        async def hashed() -> AsyncIterator[bytes]:
            nonlocal size, kept
            async for chunk in apply_edits(self.storage.read(src, chunk_size=READ_CHUNK), edits):
                hasher.update(chunk)
                size += len(chunk)
                if kept is not None:
                    kept += chunk
                    if len(kept) > HEAD_BYTES:
                        kept = None
                yield chunk

        with observe.observer.image_work("strip"):
            await self.storage.write(dst, hashed())
        return hasher.hexdigest(), size, bytes(kept) if kept is not None else None

    async def _verify(
        self,
        key: str,
        info: Any,
        *,
        scanned: bool,
        content: bytes | None,
        size: int,
        progressive: bool,
        placeholders: bool = False,
    ) -> _Verified:
        """Decode the stored bytes in the image engine (a worker thread without one). With an
        engine, the same job also computes the placeholders (when ``placeholders``) and
        renders the thumbnail, as far as :meth:`_job_parts` lets it."""
        engine = self.engine
        if engine is None:

            def _run() -> None:
                with self.storage.open_sync(key) as handle:
                    verify(
                        handle,
                        info,
                        max_pixels=self.settings.max_pixels,
                        structure_checked=scanned,
                    )

            with observe.observer.image_work("verify"):
                await anyio.to_thread.run_sync(_run)
            return _Verified(content)
        from chitram_core.engine.jobs import upload_image

        if content is None:
            content = b"".join([c async for c in self.storage.read(key, chunk_size=READ_CHUNK)])
        memory, placeholders, params = self._job_parts(
            engine.budget.total, info, size=size, progressive=progressive, placeholders=placeholders
        )
        with observe.observer.image_work("verify"):
            work = await engine.run(
                upload_image,
                content,
                info,
                max_pixels=self.settings.max_pixels,
                max_scans=self.settings.jpeg_max_scans,
                structure_checked=scanned,
                placeholders=placeholders,
                thumbnail=params,
                thumbnail_within=self.settings.decode_timeout * THUMBNAIL_TIME_SHARE,
                memory=memory,
                op="verify",
            )
        found = None
        if placeholders:
            got = work.placeholders
            found = (got.blurhash, got.dominant_color) if got is not None else (None, None)
        return _Verified(content, found, work.thumbnail)

    def _job_parts(
        self, budget: int, info: Any, *, size: int, progressive: bool, placeholders: bool
    ) -> tuple[int, bool, ThumbnailParams | None]:
        """The upload job's memory reservation, whether it computes the placeholders and the
        params it renders the thumbnail with (None: a job makes it). Each part is added only
        while the job still fits: the placeholders within ``budget``, the thumbnail within
        ``THUMBNAIL_BUDGET_SHARE`` of it. The decodes run one after the other, so the job
        reserves the largest of their costs, not their sum."""
        from chitram_core.engine import decode_cost
        from chitram_core.engine.jobs import variant_cost
        from chitram_core.images.variants import PLACEHOLDER_SIDE

        memory = decode_cost(info, file_size=size, progressive=progressive)
        if placeholders:
            side = PLACEHOLDER_SIDE * 2
            cost = variant_cost(info, file_size=size, progressive=progressive, side=side)
            placeholders = max(memory, cost) <= budget
            memory = max(memory, cost) if placeholders else memory
        params = self._thumbnail_params()
        if params is not None:
            cost = decode_cost(
                info, file_size=size, progressive=progressive, thumbnail_size=params.size
            )
            if max(memory, cost) <= budget // THUMBNAIL_BUDGET_SHARE:
                memory = max(memory, cost)
            else:
                params = None
        return memory, placeholders, params

    def _thumbnail_params(self) -> ThumbnailParams | None:
        """The params to render the thumbnail with in the upload's engine job, or None."""
        if self.thumbnailer is None or not self.settings.thumbnail_at_upload:
            return None
        return self.thumbnailer.params

    async def _placeholders(self, verified: _Verified, size: int) -> tuple[str | None, str | None]:
        """The placeholders the upload's job computed, else from a job of their own."""
        if verified.placeholders is not None:
            return verified.placeholders
        if self.variants is not None and verified.content is not None:
            return await self.variants.placeholders(verified.content, size)
        return None, None

    async def _stage_thumbnail(
        self, rendered: RenderedThumbnail | None, written: list[str]
    ) -> _Staged | None:
        """Write the thumbnail rendered with the upload to a temporary object (listed in
        ``written``); None when there is none or storage refused it (a job makes it then)."""
        if rendered is None:
            return None
        key = f"tmp/{uuid.uuid4().hex}"
        written.append(key)

        async def body() -> AsyncIterator[bytes]:
            yield rendered.data

        try:
            await self.storage.write(key, body())
        except (StorageError, OSError) as exc:
            log.warning("the thumbnail made with an upload was not stored (%s); a job will", exc)
            return None
        return _Staged(key, rendered)

    async def _record(
        self,
        stored_key: str,
        *,
        sha256: str,
        size: int,
        info: Any,
        filename: str | None,
        owner: Principal | None,
        placeholders: tuple[str | None, str | None] = (None, None),
        thumbnail: _Staged | None = None,
    ) -> _Recorded:
        image_id = str(uuid.uuid4())
        delete_token = None if owner else secrets.token_urlsafe(32)
        created = utcnow()
        final_key = blob_key(sha256)
        name = clean_filename(filename, info.format)
        async with self.db.transaction() as conn:
            is_new = await blobs.claim(
                conn,
                sha256=sha256,
                storage_key=final_key,
                size=size,
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
            for hook in self.record_hooks:  # durable jobs for the new image (e.g. tagging)
                await hook(conn, image_id)
            if is_new:
                # Inside the transaction: if the move fails nothing is recorded, and a
                # concurrent remover of the same key is held off by blobs.claim's lock.
                await self.storage.move(stored_key, final_key)
            # Last: a failure before it leaves the staged thumbnail a temporary object.
            made = await self._record_thumbnail(conn, sha256, thumbnail, new_blob=is_new)
        observe.observer.upload("stored" if is_new else "deduplicated")
        if made == "readied":
            await self._thumbnail_readied(sha256)
        image = Image(
            id=image_id,
            filename=name,
            content_type=info.format.mime,
            file_size=size,
            width=info.width,
            height=info.height,
            sha256=sha256,
            created_at=created,
            owner_id=owner.user_id if owner else None,
            delete_token=delete_token,
            blurhash=placeholders[0],
            dominant_color=placeholders[1],
            thumbnail_ready=made in ("made", "readied", "kept"),
        )
        moved = [stored_key] if is_new else []
        if thumbnail is not None and made in ("made", "readied"):
            moved.append(thumbnail.key)
        return _Recorded(image, tuple(moved))

    async def _record_thumbnail(
        self, conn: AsyncConnection, sha256: str, staged: _Staged | None, *, new_blob: bool
    ) -> str | None:
        """In the upload's transaction: the staged thumbnail recorded ready, else a pending
        row and its job; the outcome (see :meth:`Thumbnailer.record_rendered`, ``"queued"``
        for a job), None without a thumbnailer."""
        if self.thumbnailer is None:
            return None
        if staged is None:
            await self.thumbnailer.enqueue(conn, sha256)
            return "queued"
        return await self.thumbnailer.record_rendered(
            conn, sha256, staged.key, staged.rendered, new_blob=new_blob
        )

    async def _thumbnail_readied(self, sha256: str) -> None:
        """A pending thumbnail was made ready by an upload: other images with these bytes may
        be cached showing it pending. The upload is committed, so a failure here is logged."""
        on_ready = self.thumbnailer.on_ready if self.thumbnailer is not None else None
        if on_ready is None:
            return
        try:
            await on_ready(sha256)
        except Exception:
            log.warning("could not refresh cached images of %s", sha256, exc_info=True)

    async def _discard(self, key: str) -> None:
        try:
            await self.storage.delete(key)
        except (StorageError, OSError) as exc:
            log.warning("could not remove temporary object %s: %s (the sweep will)", key, exc)

    # reading ------------------------------------------------------------------------------

    async def get(self, image_id: str) -> Image:
        image, _ = await self.get_with_cache_status(image_id)
        return image

    async def get_with_cache_status(self, image_id: str) -> tuple[Image, str]:
        """The image and whether the cache served it: ``HIT``, ``MISS`` or ``DISABLED``."""
        if not _is_uuid(image_id):
            raise ImageNotFound(image_id=image_id)
        if self.cache is None:
            return await self._load(image_id), "DISABLED"
        return await self.cache.get_or_load(image_id, self._load)

    async def _load(self, image_id: str) -> Image:
        async with self.db.connect() as conn:
            image = await images.get(conn, image_id, self.thumbnail_params)
        if image is None:
            raise ImageNotFound(image_id=image_id)
        return image

    async def read(
        self, image_id: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of the stored image (``end`` exclusive, clamped)."""
        image = await self.get(image_id)
        async for chunk in self.stream(image, start, end):
            yield chunk

    async def stream(
        self, image: Image, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a range of an image already looked up (no database round trip)."""
        stop = image.file_size if end is None else min(end, image.file_size)
        if start < 0 or start > image.file_size or stop < start:
            raise InvalidRequest(
                "The byte range is outside the image", start=start, end=end, size=image.file_size
            )
        if start == stop:
            return
        if image.file_size <= SMALL_OBJECT_BYTES:
            # Content-addressed bytes never change, so a small image is kept in memory: the
            # hot read path then costs no worker-thread hop (see docs/benchmarks.md).
            data = self.small_objects.get(image.sha256)
            if data is None:
                try:
                    data = b"".join(
                        [
                            c
                            async for c in self.storage.read(
                                blob_key(image.sha256), 0, image.file_size
                            )
                        ]
                    )
                except StorageKeyNotFound as exc:
                    log.error("image %s has a row but no bytes", image.id)
                    raise ImageNotFound("The image's bytes are missing", image_id=image.id) from exc
                if len(data) == image.file_size:
                    self.small_objects.put(image.sha256, data)
            yield data[start:stop]
            return
        try:
            async for chunk in self.storage.read(blob_key(image.sha256), start, stop):
                yield chunk
        except StorageKeyNotFound as exc:
            log.error("image %s has a row but no bytes at %s", image.id, blob_key(image.sha256))
            raise ImageNotFound("The image's bytes are missing", image_id=image.id) from exc

    def small_object(self, image: Image) -> bytes | None:
        """The image's bytes when this process holds them in memory (no I/O), else None.

        Only for an image just looked up: the lookup is what refuses a deleted image.
        """
        if image.file_size > SMALL_OBJECT_BYTES:
            return None
        return self.small_objects.get(image.sha256)

    async def thumbnail(self, image_id: str) -> Thumbnail:
        """The image's thumbnail, made now if it is missing (concurrent callers share the job)."""
        return await self.thumbnail_of(await self.get(image_id))

    async def thumbnail_of(self, image: Image) -> Thumbnail:
        """:meth:`thumbnail` for an image just looked up (no second lookup).

        A ready thumbnail is remembered by image id: while the image lives its blob does (ids
        never come back), and a blob's ready thumbnail row never changes, so only the image's
        lookup, done by the caller on every request, decides whether it may be served.
        """
        if self.thumbnailer is None:
            raise ServiceUnavailable("Thumbnails are not available in this instance")
        ready = self._ready_thumbnails.get(image.id)
        if ready is not None and ready.key == self.thumbnailer.key_for(image.sha256):
            return ready
        thumb = await self.thumbnailer.get(image)
        self._ready_thumbnails[image.id] = thumb
        if len(self._ready_thumbnails) > READY_THUMBNAILS:
            self._ready_thumbnails.popitem(last=False)
        return thumb

    def small_thumbnail(self, thumb: Thumbnail) -> bytes | None:
        """The thumbnail's bytes when this process holds them in memory (no I/O), else None."""
        if thumb.size > SMALL_OBJECT_BYTES:
            return None
        data = self.small_objects.get(thumb.key)
        return data if data is not None and len(data) == thumb.size else None

    async def stream_thumbnail(
        self, thumb: Thumbnail, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        stop = thumb.size if end is None else min(end, thumb.size)
        if start >= stop:
            return
        try:
            if thumb.size <= SMALL_OBJECT_BYTES:
                data = self.small_thumbnail(thumb)
                if data is None:
                    data = b"".join([c async for c in self.storage.read(thumb.key, 0, thumb.size)])
                    if len(data) == thumb.size:
                        self.small_objects.put(thumb.key, data)
                yield data[start:stop]
                return
            async for chunk in self.storage.read(thumb.key, start, stop):
                yield chunk
        except StorageKeyNotFound as exc:
            self._ready_thumbnails.pop(thumb.image_id, None)
            raise ServiceUnavailable("The thumbnail is being remade", retry_after=2) from exc

    # variants (docs/http-api.md#variants) -------------------------------------------

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
        return self._variants().url(
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
        return image, await self._variants().get(image, parsed, accept=accept)

    async def variant(
        self, image_id: str, spec: str, *, accept: str | None = None
    ) -> AsyncIterator[bytes]:
        """The variant's bytes as an async stream (rendered first if needed)."""
        _, found = await self.variant_info(image_id, spec, accept=accept)
        async for chunk in self._variants().stream(found):
            yield chunk

    def _variants(self) -> VariantService:
        if self.variants is None:
            raise ServiceUnavailable("Variants are not available in this instance")
        return self.variants

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
        check_limit(limit)
        async with self.db.connect() as conn:
            filters = await image_filters(conn, tags, query)
            if filters is None:
                return Page(items=(), next_cursor=None)
            items, next_cursor = await images.list_for_owner(
                conn,
                owner.user_id,
                limit=limit,
                cursor=cursor,
                params=self.thumbnail_params,
                filters=filters,
            )
        return Page(items=tuple(items), next_cursor=next_cursor)

    # deleting -----------------------------------------------------------------------------

    async def delete(
        self,
        image_id: str,
        *,
        principal: Principal | None = None,
        delete_token: str | None = None,
    ) -> None:
        """Delete by owner or delete token (v1 order); the row goes even if storage fails."""
        if not _is_uuid(image_id):
            raise ImageNotFound(image_id=image_id)
        async with self.db.transaction() as conn:
            row = await images.lock(conn, image_id)
            if row is None:
                raise ImageNotFound(image_id=image_id)
            authorize_delete(row["owner_id"], row["delete_token_hash"], principal, delete_token)
            await images.delete(conn, image_id)
            keys = await blobs.release(conn, row["sha256"])
        if keys:
            self.small_objects.discard(row["sha256"])
            for key in keys:
                self.small_objects.discard(key)
        self._ready_thumbnails.pop(image_id, None)
        if self.cache is not None:
            await self.cache.invalidate_image(image_id)
        for key in keys:
            await self.remover.remove(key)


def _upload_result(exc: BaseException) -> str:
    """The ``chitram_uploads_total`` label for a failed upload: a small closed set."""
    if isinstance(exc, ChitramError):
        return exc.code.lower()
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled"
    return "error"


def _is_uuid(value: str) -> bool:
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):  # the ids we hand out
        return True
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return len(value) == 36
