"""``Uploads`` (``chitram.uploads``): resumable uploads, kept in storage and the database.

An upload is a row (declared length, offset, owner, expiry) and the chunks received so far,
each stored as its own object ``resumable/<upload id>/<start>-<nonce>`` and named by a part
row. A chunk is written first, checked as it flows (:mod:`chitram_core.resumable.chunks`);
only then does one transaction record its part and move the offset, with a compare-and-set
on the offset it started at, so that of two requests racing on one upload (in one process or
in two) one wins and the other is refused (``OFFSET_MISMATCH``). Any process can take the
next chunk: nothing about an upload lives in memory between requests.

The chunk that brings the last byte hands the parts, read back in order, to the same ingest
pipeline as every other upload (:class:`PartsSource`), and the offset moves together with the
new image's id: a crash before that leaves the last chunk to be sent again, never an upload
that claims to be complete without its image.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import attrs

from chitram_core.db import Database, resumable
from chitram_core.errors import (
    ChitramError,
    FileTooLarge,
    InternalError,
    InvalidFileFormat,
    InvalidRequest,
    OffsetMismatch,
    UploadNotFound,
)
from chitram_core.ingest import Ingest
from chitram_core.intake import UploadSource, chunks, clean_filename
from chitram_core.limits import UploadSlots
from chitram_core.models import Image, Principal
from chitram_core.observe import Observer
from chitram_core.resumable.chunks import CheckedChunk, Checksum
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError

log = logging.getLogger(__name__)

PREFIX = "resumable"
"""Where the parts of unfinished uploads live in storage."""

Row = Mapping[str, Any]
"""An upload's database row (``chitram_core.db.resumable.get``)."""

CreationCheck = Callable[[Principal | None, int], Awaitable[None]]
"""``check(owner, declared_length)``, run before an upload is created; it refuses by raising a
``ChitramError`` (a quota: ``QUOTA_EXCEEDED``)."""


@attrs.frozen(kw_only=True)
class ResumableUpload:
    """Where one resumable upload stands."""

    id: str
    length: int
    """The declared length (``Upload-Length``)."""
    offset: int
    """Bytes received and stored (``Upload-Offset``)."""
    filename: str | None
    expires_at: datetime
    image_id: str | None = None
    """The image made from it, once the last byte arrived and passed every check."""

    @property
    def finished(self) -> bool:
        return self.image_id is not None


def _upload(row: Row) -> ResumableUpload:
    return ResumableUpload(
        id=row["id"],
        length=row["length"],
        offset=row["received"],
        filename=row["filename"],
        expires_at=row["expires_at"],
        image_id=row["image_id"],
    )


class PartsSource:
    """A finished resumable upload as an ingest :class:`~chitram_core.ingest.Source`: its
    parts read back from storage, in order."""

    def __init__(
        self,
        storage: Storage,
        keys: Sequence[str],
        *,
        length: int,
        filename: str | None,
        owner: Principal | None,
    ) -> None:
        self.storage = storage
        self.keys = tuple(keys)
        self.declared_length: int | None = length
        self.filename = filename
        self.owner = owner

    async def chunks(self) -> AsyncIterator[bytes]:
        for key in self.keys:
            async for chunk in self.storage.read(key, chunk_size=256 * 1024):
                yield chunk


class Uploads:
    """``create``, ``append``, ``status``, ``cancel`` and ``finish`` a resumable upload."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        storage: Storage,
        ingest: Ingest,
        *,
        get_image: Callable[[str], Awaitable[Image]],
        remove_image: Callable[[Image, Principal | None], Awaitable[None]],
        creation_checks: Sequence[CreationCheck] = (),
        slots: UploadSlots | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.db = database
        self.storage = storage
        self.ingest = ingest
        self.get_image = get_image
        self.remove_image = remove_image
        self.creation_checks = tuple(creation_checks)
        """Run in order before an upload is created: the one place a quota hooks in."""
        self.slots = slots
        """The process's upload slots: the finish holds one for its image work, as a
        multipart upload does once its file has arrived (503 when none frees up in time)."""
        self.observer = observer if observer is not None else Observer()
        self._writing: set[str] = set()
        """Uploads a request of this process is writing to (a second one is refused at once;
        across processes the offset's compare-and-set decides)."""

    # the SDK surface --------------------------------------------------------------------------

    async def create(
        self,
        length: int,
        *,
        owner: Principal | None = None,
        filename: str | None = None,
        first_chunk: UploadSource | None = None,
        checksum: Checksum | None = None,
    ) -> ResumableUpload:
        """A new upload of ``length`` bytes; ``first_chunk`` (optional) is appended at once."""
        limit = self.settings.max_resumable_bytes
        if length < 1:
            raise InvalidRequest("Upload-Length must be a positive number", field="Upload-Length")
        if length > limit:
            self.observer.resumable("refused")
            raise FileTooLarge(f"The file is larger than the {limit} byte limit", max_bytes=limit)
        for check in self.creation_checks:
            await check(owner, length)
        if filename is not None:
            filename = clean_filename(filename)  # bounded, no control characters
        upload_id = uuid.uuid4().hex
        expires = datetime.now(UTC) + timedelta(seconds=self.settings.resumable_ttl)
        async with self.db.transaction() as conn:
            await resumable.create(
                conn,
                upload_id=upload_id,
                owner_id=owner.user_id if owner else None,
                length=length,
                filename=filename,
                expires_at=expires,
            )
        self.observer.resumable("created")
        if first_chunk is not None:
            return await self.append(upload_id, 0, first_chunk, owner=owner, checksum=checksum)
        return ResumableUpload(
            id=upload_id, length=length, offset=0, filename=filename, expires_at=expires
        )

    async def status(self, upload_id: str, *, owner: Principal | None = None) -> ResumableUpload:
        return _upload(await self._load(upload_id, owner))

    async def append(
        self,
        upload_id: str,
        offset: int,
        body: UploadSource,
        *,
        owner: Principal | None = None,
        checksum: Checksum | None = None,
    ) -> ResumableUpload:
        """Store ``body`` as the bytes from ``offset`` on (which must be the upload's offset).

        The chunk that completes the upload makes the image (see :meth:`finish`); the answer
        then carries its ``image_id``. A refused chunk is discarded and the offset stays.
        """
        row = await self._load(upload_id, owner)
        if offset != row["received"]:
            raise _mismatch(row["received"], f"The upload is at offset {row['received']}")
        if upload_id in self._writing:
            raise _mismatch(row["received"], "Another request is writing to this upload")
        self._writing.add(upload_id)
        try:
            return await self._append(row, offset, body, owner, checksum)
        finally:
            self._writing.discard(upload_id)

    async def finish(self, upload_id: str, *, owner: Principal | None = None) -> Image:
        """The image a complete upload made; ``INVALID_REQUEST`` while bytes are missing."""
        row = await self._load(upload_id, owner)
        if row["image_id"] is None:
            raise InvalidRequest(
                f"The upload has {row['received']} of its {row['length']} bytes",
                offset=row["received"],
            )
        image: Image = await self.get_image(row["image_id"])
        return image

    async def cancel(self, upload_id: str, *, owner: Principal | None = None) -> None:
        """Forget the upload and remove its stored bytes (an image it made stays)."""
        await self._load(upload_id, owner)
        await self._remove(upload_id)
        self.observer.resumable("cancelled")

    async def sweep(self, older_than: float = 3600.0) -> int:
        """Remove expired uploads (rows and bytes), and parts no row names that are older than
        ``older_than`` seconds (a request cut off between its write and its record); how many
        uploads expired."""
        now = datetime.now(UTC)
        async with self.db.connect() as conn:
            expired = await resumable.expired(conn, now)
        for upload_id in expired:
            await self._remove(upload_id)
            self.observer.resumable("expired")
        await self._remove_stray_parts(now - timedelta(seconds=older_than))
        return len(expired)

    # the parts ----------------------------------------------------------------------------

    async def _append(
        self,
        row: Row,
        offset: int,
        body: UploadSource,
        owner: Principal | None,
        checksum: Checksum | None,
    ) -> ResumableUpload:
        upload_id, length = row["id"], row["length"]
        key = f"{PREFIX}/{upload_id}/{offset:015d}-{uuid.uuid4().hex[:8]}"
        chunk = CheckedChunk(chunks(body), start=offset, length=length, checksum=checksum)
        try:
            size = await self.storage.write(key, chunk)
        except InvalidFileFormat:
            await self._remove(upload_id)  # no later chunk can make it an image
            self.observer.resumable("invalid_file_format")
            raise
        except ChitramError as exc:
            self.observer.resumable(exc.code.lower())
            raise
        except (StorageError, OSError) as exc:
            raise InternalError("Storage is not accepting writes") from exc
        if size == 0:
            await self._discard([key])
            return _upload(row)
        self.observer.resumable_bytes(size)
        image: Image | None = None
        if offset + size == length:
            image = await self._make_image(row, key, owner)
        async with self.db.transaction() as conn:
            moved = await resumable.advance(
                conn,
                upload_id,
                start=offset,
                size=size,
                storage_key=key,
                image_id=image.id if image else None,
            )
        if not moved:
            await self._discard([key])
            if image is not None:
                await self.remove_image(image, owner)
            raise _mismatch(None, "Another request wrote this part of the upload first")
        if image is not None:
            await self._remove_parts(upload_id)
            self.observer.resumable("finished")
        return attrs.evolve(
            _upload(row), offset=offset + size, image_id=image.id if image else None
        )

    async def _make_image(self, row: Row, last_key: str, owner: Principal | None) -> Image:
        """Every part and ``last_key`` through the ingest pipeline. Bytes that are no good
        image end the upload; a failure of ours keeps it, less the last chunk, to retry."""
        async with self.db.connect() as conn:
            keys = [key for _, _, key in await resumable.parts(conn, row["id"])]
        source = PartsSource(
            self.storage,
            [*keys, last_key],
            length=row["length"],
            filename=row["filename"],
            owner=owner,
        )
        try:
            identity = f"user:{owner.user_id}" if owner is not None else None
            async with self.slots.acquire(identity) if self.slots else contextlib.nullcontext():
                return await self.ingest.upload(source, max_bytes=self.settings.max_resumable_bytes)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._discard([last_key])
                if isinstance(exc, ChitramError) and exc.status < 500:
                    await self._remove(row["id"])
            self.observer.resumable(_event(exc))
            raise

    async def _remove_parts(self, upload_id: str) -> None:
        async with self.db.connect() as conn:
            keys = [key for _, _, key in await resumable.parts(conn, upload_id)]
        await self._discard(keys)
        async with self.db.transaction() as conn:
            await resumable.forget_parts(conn, upload_id)

    async def _remove(self, upload_id: str) -> None:
        await self._remove_parts(upload_id)
        async with self.db.transaction() as conn:
            await resumable.remove(conn, upload_id)

    async def _remove_stray_parts(self, before: datetime) -> None:
        keys = [key async for key in self.storage.keys(f"{PREFIX}/")]
        named: set[str] = set()
        for i in range(0, len(keys), 500):
            async with self.db.connect() as conn:
                named |= await resumable.known_keys(conn, keys[i : i + 500])
        for key in keys:
            if key in named:
                continue
            modified = await self.storage.modified(key)
            if modified is not None and modified <= before:
                await self._discard([key])

    async def _discard(self, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                await self.storage.delete(key)
            except (StorageError, OSError) as exc:
                log.warning("could not remove upload part %s: %s (the sweep will)", key, exc)

    async def _load(self, upload_id: str, owner: Principal | None) -> Row:
        async with self.db.connect() as conn:
            row = await resumable.get(conn, upload_id) if _is_upload_id(upload_id) else None
        owner_id = owner.user_id if owner else None
        if row is None or row["owner_id"] != owner_id:
            raise UploadNotFound(upload_id=upload_id)
        if row["image_id"] is None and row["expires_at"] <= datetime.now(UTC):
            raise UploadNotFound("The upload has expired", upload_id=upload_id)
        return row


def _event(exc: BaseException) -> str:
    """The ``chitram_resumable_uploads_total`` label of a failed finish: a small closed set."""
    if isinstance(exc, ChitramError):
        return exc.code.lower()
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled"
    return "error"


def _is_upload_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def _mismatch(offset: int | None, message: str) -> OffsetMismatch:
    return OffsetMismatch(message) if offset is None else OffsetMismatch(message, offset=offset)
