"""The checks on the bytes themselves, none of which decodes an image.

- :class:`StreamChecks`, while the bytes flow: hash, bounded head, format sniffed from the
  first 16 bytes (``INVALID_FILE_FORMAT`` stops the stream; see
  :class:`~chitram_core.intake.Intake`).
- :class:`HeaderChecks`, once they have all arrived: not empty, the header's format equals the
  sniffed one, dimensions and pixels within the limits (``IMAGE_TOO_LARGE``).
- :class:`StripMetadata`, after the image job: the metadata the job's structure scan planned
  to drop is cut out into a second temporary object, hashed and counted again: ``sha256`` and
  ``size`` describe the stored bytes.

None of these walks the file's structure on the event loop: the header walk is bounded
(:data:`~chitram_core.images.formats.MAX_HEADER_SEGMENTS`), the structure scan runs in the
image engine (:mod:`chitram_core.ingest.image_job`).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from chitram_core.errors import InvalidRequest
from chitram_core.images.formats import (
    HEAD_BYTES,
    ImageFormat,
    check_limits,
    jpeg_progressive,
    probe,
)
from chitram_core.images.metadata import Edit, apply_edits
from chitram_core.ingest.store import temporary_key
from chitram_core.ingest.upload import Tapped, Upload
from chitram_core.intake import READ_CHUNK, Intake, check_unstreamed
from chitram_core.observe import Observer
from chitram_core.settings import Settings
from chitram_core.storage import Storage


class StreamChecks:
    def __init__(self, settings: Settings) -> None:
        pass

    async def run(self, upload: Upload) -> None:
        intake = upload.intake = Intake()
        upload.stream = Tapped(upload.stream, intake.take)


class HeaderChecks:
    def __init__(self, settings: Settings) -> None:
        self.max_pixels = settings.max_pixels
        self.max_dimension = settings.max_dimension
        self.max_pixels_unstreamed = settings.max_pixels_unstreamed

    async def run(self, upload: Upload) -> None:
        intake = upload.streamed()
        fmt = intake.finish()
        head = bytes(intake.head)
        info = probe(head)
        if info.format != fmt:
            raise InvalidRequest("The file's header does not match its format")
        check_limits(info, max_pixels=self.max_pixels, max_dimension=self.max_dimension)
        check_unstreamed(info, self.max_pixels_unstreamed)
        upload.info = info
        upload.sha256, upload.size = intake.hasher.hexdigest(), intake.size
        # The whole file is usually in the head buffer already: no read back for the image job.
        upload.content = bytes(intake.head) if intake.size <= len(intake.head) else None
        upload.progressive = fmt is ImageFormat.JPEG and jpeg_progressive(head)


class StripMetadata:
    def __init__(self, storage: Storage, *, observer: Observer | None = None) -> None:
        self.storage = storage
        self.observer = observer if observer is not None else Observer()

    async def run(self, upload: Upload) -> None:
        edits = upload.edits
        if not edits:
            return  # stored byte for byte
        source, stripped = upload.stored_key, temporary_key(upload)
        with self.observer.image_work("strip"):
            upload.sha256, upload.size, upload.content = await self._rewrite(
                source, stripped, edits
            )
        upload.stored_key = stripped

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

        await self.storage.write(dst, hashed())
        return hasher.hexdigest(), size, bytes(kept) if kept is not None else None
