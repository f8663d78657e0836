"""ImageService: the upload, read, list and delete flows, orchestrating storage, DB and cache.

The upload streams: each chunk is counted (size limit), hashed, kept in a bounded head buffer
(format sniffing and header probing) and fed to the metadata scanner while it is written to a
temporary storage object. Only then is anything checked that needs the whole file, and only
then does a row appear. A failure at any step removes the temporary object, so no row ever
points at missing bytes; bytes that a crash leaves behind are found by the sweep.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol

import anyio
import attrs
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core import observe
from chitram_core.db import Database, blobs, deletions, images
from chitram_core.db.tables import utcnow
from chitram_core.errors import (
    ChitramError,
    DeleteTokenRequired,
    FileTooLarge,
    Forbidden,
    ImageNotFound,
    ImageTooLarge,
    InternalError,
    InvalidDeleteToken,
    InvalidRequest,
    ServiceUnavailable,
    ValidationError,
)
from chitram_core.images.formats import (
    HEAD_BYTES,
    ImageFormat,
    ImageInfo,
    JpegScans,
    check_limits,
    probe,
    sniff,
    verify,
)
from chitram_core.images.metadata import Edit, MetadataScanner, apply_edits
from chitram_core.models import Image, Page, Principal, Thumbnail, Variant
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError, StorageKeyNotFound, blob_key
from chitram_core.tags.search import image_filters

if TYPE_CHECKING:
    from chitram_core.engine import ImageEngine
    from chitram_core.thumbnailer import Thumbnailer
    from chitram_core.variants import VariantService

log = logging.getLogger(__name__)

UploadSource = bytes | bytearray | memoryview | IO[bytes] | AsyncIterable[bytes]
READ_CHUNK = 64 * 1024
SNIFF_BYTES = 16
MAX_FILENAME = 255
SMALL_OBJECT_BYTES = 64 * 1024
SMALL_OBJECTS_BUDGET = 16 * 1024 * 1024
READY_THUMBNAILS = 4096
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ImageCacheLike(Protocol):
    """What the service needs from the metadata cache (``chitram_core.cache.ImageCache``)."""

    async def get_image(self, image_id: str) -> Image | None: ...

    async def begin_fill(self, image_id: str) -> Any: ...

    async def fill_image(self, image: Image, token: Any) -> object: ...

    async def invalidate_image(self, image_id: str) -> None: ...


@attrs.define
class _Intake:
    """What the streaming pass learns about an upload while writing it."""

    max_bytes: int
    strip: bool
    max_scans: int = 100
    size: int = 0
    head: bytearray = attrs.field(factory=bytearray)
    hasher: Any = attrs.field(factory=hashlib.sha256)
    early: bytearray = attrs.field(factory=bytearray)
    format: ImageFormat | None = None
    scanner: MetadataScanner | None = None
    scans: JpegScans | None = None

    def take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise FileTooLarge(
                f"The file is larger than the {self.max_bytes} byte limit",
                max_bytes=self.max_bytes,
            )
        self.hasher.update(chunk)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        if self.format is None:
            # Bytes seen before the format is known wait here, then go to the scanner whole.
            self.early += chunk
            if len(self.early) >= SNIFF_BYTES:
                self._start()
            return
        if self.scanner is not None:
            self.scanner.feed(chunk)
        if self.scans is not None:
            self.scans.feed(chunk)

    def finish(self) -> ImageFormat:
        if self.size == 0:
            raise InvalidRequest("The file is empty")
        if self.format is None:
            self._start()
        assert self.format is not None
        return self.format

    def _start(self) -> None:
        self.format = sniff(bytes(self.early[:SNIFF_BYTES]))
        if self.strip:
            self.scanner = MetadataScanner(self.format)
            self.scanner.feed(bytes(self.early))
        if self.format is ImageFormat.JPEG:
            self.scans = JpegScans(self.max_scans)
            self.scans.feed(bytes(self.early))
        self.early = bytearray()


async def _chunks(source: UploadSource) -> AsyncIterator[bytes]:
    """Any accepted source as a stream of chunks; never reads a file object whole."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for offset in range(0, len(view), READ_CHUNK):
            yield bytes(view[offset : offset + READ_CHUNK])
        return
    if hasattr(source, "read"):
        reader: Callable[[int], bytes] = source.read
        while True:
            chunk = await anyio.to_thread.run_sync(reader, READ_CHUNK)
            if not chunk:
                return
            if not isinstance(chunk, bytes | bytearray):
                raise InvalidRequest("The file must be opened in binary mode")
            yield bytes(chunk)
    elif isinstance(source, AsyncIterable):
        async for chunk in source:
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise InvalidRequest("Upload chunks must be bytes")
            if chunk:
                yield bytes(chunk)
    else:
        raise InvalidRequest("The upload source must be bytes, a binary file or an async iterable")


def clean_filename(filename: str | None, fmt: ImageFormat | None = None) -> str:
    """A display name: no path, no control characters, bounded; any script is kept.

    Given the detected ``fmt``, the name ends in an extension of that format: one that already
    names it is kept as written (``photo.JPEG``), one that looks like a file extension is
    replaced (``cat.png`` holding a JPEG becomes ``cat.jpg``), otherwise one is appended. A
    download then never claims a type its bytes are not.
    """
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C"
    )
    name = name.strip().strip(".")
    if fmt is None:
        return (name or "image")[:MAX_FILENAME]
    stem, dot, suffix = (name or "image").rpartition(".")
    if not dot:
        stem, suffix = suffix, ""
    if suffix.lower() in _FORMAT_EXTENSIONS[fmt]:
        extension = "." + suffix
    else:
        extension = "." + fmt.extension
        if not _looks_like_extension(suffix):
            stem = f"{stem}.{suffix}" if dot else stem
    stem = stem[: MAX_FILENAME - len(extension)].rstrip(". ")
    if not stem.strip(" ."):
        stem = "image"
    return stem + extension


_FORMAT_EXTENSIONS = {
    ImageFormat.JPEG: frozenset({"jpg", "jpeg", "jpe", "jfif", "pjpeg", "pjp"}),
    ImageFormat.PNG: frozenset({"png", "apng"}),
    ImageFormat.GIF: frozenset({"gif"}),
    ImageFormat.WEBP: frozenset({"webp"}),
}


def _looks_like_extension(suffix: str) -> bool:
    """``png``, ``html``, ``tar``: up to 5 ASCII letters and digits, at least one letter."""
    return 0 < len(suffix) <= 5 and suffix.isascii() and suffix.isalnum() and not suffix.isdigit()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ImageService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        storage: Storage,
        *,
        cache: ImageCacheLike | None = None,
        on_recorded: Callable[[AsyncConnection, str], Awaitable[None]] | None = None,
        on_uploaded: Callable[[Image], None] | None = None,
        thumbnail_params: str = "",
        engine: ImageEngine | None = None,
    ) -> None:
        self.settings = settings
        self.db = database
        self.storage = storage
        self.cache = cache
        self.on_recorded = on_recorded
        self.on_uploaded = on_uploaded
        self.thumbnail_params = thumbnail_params
        self.remover = ByteRemover(database, storage)
        self.thumbnailer: Thumbnailer | None = None
        self.small_objects = SmallObjects(SMALL_OBJECTS_BUDGET)
        self.engine = engine
        self.record_hooks: list[Callable[[AsyncConnection, str], Awaitable[None]]] = []
        self.variants: VariantService | None = None  # wave 2: set by Chitram
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
        intake = _Intake(
            max_bytes=limit,
            strip=self.settings.strip_metadata,
            max_scans=self.settings.jpeg_max_scans,
        )
        tmp_key = f"tmp/{uuid.uuid4().hex}"
        written: list[str] = [tmp_key]

        async def counted() -> AsyncIterator[bytes]:
            async for chunk in _chunks(source):
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
            content, computed = await self._verify(
                stored_key,
                info,
                scanned=intake.scanner is not None,
                content=content,
                size=size,
                progressive=progressive,
                placeholders=want_placeholders,
            )
            placeholders: tuple[str | None, str | None] = (None, None)
            if computed is not None:
                placeholders = computed
            elif self.variants is not None and content is not None:
                placeholders = await self.variants.placeholders(content, size)
            image, is_new = await self._record(
                stored_key,
                sha256=sha256,
                size=size,
                info=info,
                filename=filename,
                owner=owner,
                placeholders=placeholders,
            )
            moved = stored_key if is_new else None
        except BaseException as exc:
            observe.observer.upload(_upload_result(exc))
            with anyio.CancelScope(shield=True):
                for key in written:
                    await self._discard(key)
            raise
        for key in written:
            if key != moved:  # a moved object has nothing left to remove
                await self._discard(key)
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
    ) -> tuple[bytes | None, tuple[str | None, str | None] | None]:
        """Decode the stored bytes in the image engine (a worker thread without one); the
        bytes when they were read (for the placeholders job), and with ``placeholders`` the
        (blurhash, dominant colour) computed in the same engine job ((None, None) when that
        failed), or None when they were not attempted (no engine, or the combined job would
        not fit the memory budget)."""
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
            return content, None
        from chitram_core.engine import decode_cost, verify_image
        from chitram_core.engine.jobs import variant_cost, verify_placeholders_image
        from chitram_core.images.variants import PLACEHOLDER_SIDE

        if content is None:
            content = b"".join([c async for c in self.storage.read(key, chunk_size=READ_CHUNK)])
        memory = decode_cost(info, file_size=size, progressive=progressive)
        if placeholders:
            # One job for both: the decodes run one after the other, so the larger cost.
            combined = max(
                memory,
                variant_cost(
                    info, file_size=size, progressive=progressive, side=PLACEHOLDER_SIDE * 2
                ),
            )
            if combined <= engine.budget.total:
                with observe.observer.image_work("verify"):
                    result = await engine.run(
                        verify_placeholders_image,
                        content,
                        info,
                        max_pixels=self.settings.max_pixels,
                        max_scans=self.settings.jpeg_max_scans,
                        structure_checked=scanned,
                        memory=combined,
                        op="verify",
                    )
                if result is None:
                    return content, (None, None)
                return content, (result.blurhash, result.dominant_color)
        with observe.observer.image_work("verify"):
            await engine.run(
                verify_image,
                content,
                info,
                max_pixels=self.settings.max_pixels,
                max_scans=self.settings.jpeg_max_scans,
                structure_checked=scanned,
                memory=memory,
                op="verify",
            )
        return content, None

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
    ) -> tuple[Image, bool]:
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
            if self.on_recorded is not None:
                await self.on_recorded(conn, sha256)
            for hook in self.record_hooks:  # durable jobs for the new image (e.g. tagging)
                await hook(conn, image_id)
            if is_new:
                # Inside the transaction: if the move fails nothing is recorded, and a
                # concurrent remover of the same key is held off by blobs.claim's lock.
                await self.storage.move(stored_key, final_key)
        observe.observer.upload("stored" if is_new else "deduplicated")
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
        )
        return image, is_new

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
        cached = await self.cache.get_image(image_id)
        if cached is not None:
            observe.observer.cache("hit")
            return cached, "HIT"
        observe.observer.cache("miss")
        token = await self.cache.begin_fill(image_id)
        image = await self._load(image_id)
        await self.cache.fill_image(image, token)
        return image, "MISS"

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

    # variants (wave 2, CONTRACT §6.3) ----------------------------------------------------

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
        if not 1 <= limit <= 100:
            raise ValidationError("limit must be between 1 and 100", field="limit")
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
            _authorize_delete(row, principal, delete_token)
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


def check_unstreamed(info: ImageInfo, max_pixels: int) -> None:
    """A lower pixel limit for WebP, whose decoder needs the whole file and two canvases."""
    if info.format is ImageFormat.WEBP and info.pixels > max_pixels:
        raise ImageTooLarge(
            f"The WebP image is {info.width}x{info.height} pixels; WebP is decoded whole, so "
            f"its limit is {max_pixels} pixels",
            width=info.width,
            height=info.height,
            max_pixels=max_pixels,
        )


def _authorize_delete(row: Any, principal: Principal | None, delete_token: str | None) -> None:
    owner_id = row["owner_id"]
    if principal is not None and owner_id is not None and principal.user_id == owner_id:
        return
    if owner_id is None:
        stored = row["delete_token_hash"]
        if delete_token is None:
            raise DeleteTokenRequired()
        if stored is None or not hmac.compare_digest(stored, hash_token(delete_token)):
            raise InvalidDeleteToken()
        return
    raise Forbidden("Only the owner can delete this image")


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


class SmallObjects:
    """An LRU of small stored objects by SHA-256 (or thumbnail key), bounded by total size.

    Safe without invalidation because the key is the content hash: the bytes for a hash never
    change, and a deleted image is refused by its metadata lookup before its bytes are asked for.
    A thumbnail key names its source's hash and the rendering parameters, and is served only
    from a ready row of a live image, with its recorded size checked.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, sha256: str) -> bytes | None:
        data = self._items.get(sha256)
        if data is not None:
            self._items.move_to_end(sha256)
        return data

    def put(self, sha256: str, data: bytes) -> None:
        if len(data) > self.budget or sha256 in self._items:
            return
        self._items[sha256] = data
        self.size += len(data)
        while self.size > self.budget:
            _, dropped = self._items.popitem(last=False)
            self.size -= len(dropped)

    def discard(self, sha256: str) -> None:
        data = self._items.pop(sha256, None)
        if data is not None:
            self.size -= len(data)


class ByteRemover:
    """Removes queued storage objects without racing an upload that revives the same key."""

    def __init__(self, database: Database, storage: Storage) -> None:
        self.db = database
        self.storage = storage

    async def remove(self, key: str) -> bool:
        """True when the bytes are gone (or were revived); False leaves the key queued."""
        try:
            async with self.db.transaction() as conn:
                if not await deletions.lock(conn, key):
                    return True
                if not await deletions.key_is_live(conn, key):
                    await self.storage.delete(key)
                await deletions.forget(conn, key)
            return True
        except (StorageError, OSError) as exc:
            log.warning("storage could not remove %s (%s); it stays queued", key, exc)
            await self._note_failure(key, exc)
            return False

    async def _note_failure(self, key: str, exc: BaseException) -> None:
        try:
            async with self.db.transaction() as conn:
                await deletions.note_failure(conn, key, f"{type(exc).__name__}: {exc}")
        except ChitramError:
            raise
        except Exception:  # the note is best effort; the key is still queued
            log.exception("could not record the failed removal of %s", key)

    async def drain(
        self, limit: int = 1000, progress: Callable[[str, int, int | None], None] | None = None
    ) -> tuple[int, int]:
        """Retry queued removals; (removed, still queued)."""
        async with self.db.connect() as conn:
            keys = await deletions.oldest(conn, limit)
        removed = 0
        for done, key in enumerate(keys, 1):
            removed += await self.remove(key)
            if progress is not None:
                progress("remove", done, len(keys))
        return removed, len(keys) - removed
