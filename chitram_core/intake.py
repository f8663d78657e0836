"""Upload intake: what an upload may be given as, and what the streaming pass learns of it.

Each chunk is counted, hashed and kept in a bounded head buffer (format sniffing and header
probing) while the upload writes it to storage; nothing here holds a whole file or walks its
structure (that is the image job's, in the engine). The display name is cleaned here too.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import IO, Any

import anyio
import attrs

from chitram_core.errors import ImageTooLarge, InvalidRequest
from chitram_core.images.formats import (
    EARLY_SNIFF_BYTES,
    HEAD_BYTES,
    SNIFF_BYTES,
    WHOLE_FILE_FORMATS,
    ImageFormat,
    ImageInfo,
    sniff,
)

UploadSource = bytes | bytearray | memoryview | IO[bytes] | AsyncIterable[bytes]
READ_CHUNK = 64 * 1024
MAX_FILENAME = 255


@attrs.define
class Intake:
    """What the streaming pass learns about an upload while writing it.

    Each chunk costs the event loop a hash update and at most a copy into the bounded head
    buffer: C-speed work proportional to the chunk. Walking the container structure (the
    metadata scan, the JPEG scan count) is the image job's, in the engine, where a file built
    to make that walk slow costs a worker's time rather than the server's.
    """

    size: int = 0
    head: bytearray = attrs.field(factory=bytearray)
    hasher: Any = attrs.field(factory=hashlib.sha256)
    format: ImageFormat | None = None

    def take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.hasher.update(chunk)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        if self.format is None and len(self.head) >= EARLY_SNIFF_BYTES:
            self.format = sniff(bytes(self.head[:SNIFF_BYTES]))  # refused from the first chunk

    def finish(self) -> ImageFormat:
        if self.size == 0:
            raise InvalidRequest("The file is empty")
        # Decided on the whole head: an early decision may have seen too few ftyp brands.
        self.format = sniff(bytes(self.head[:SNIFF_BYTES]))
        return self.format


def chunks(source: UploadSource) -> AsyncIterator[bytes]:
    """Any accepted source as a stream of chunks; never reads a file object whole.

    An iterator object rather than an async generator: a reader that stops early (a refused
    upload) leaves nothing to finalise, where an unfinished generator would be closed by the
    garbage collector (trio warns about that)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return _BytesChunks(memoryview(source))
    if hasattr(source, "read"):
        return _FileChunks(source.read)
    if isinstance(source, AsyncIterable):
        return _IterableChunks(source.__aiter__())
    raise InvalidRequest("The upload source must be bytes, a binary file or an async iterable")


class _BytesChunks:
    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._offset = 0

    def __aiter__(self) -> _BytesChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._offset >= len(self._view):
            raise StopAsyncIteration
        chunk = bytes(self._view[self._offset : self._offset + READ_CHUNK])
        self._offset += READ_CHUNK
        return chunk


class _FileChunks:
    def __init__(self, reader: Callable[[int], bytes]) -> None:
        self._reader = reader

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anyio.to_thread.run_sync(self._reader, READ_CHUNK)
        if not chunk:
            raise StopAsyncIteration
        if not isinstance(chunk, bytes | bytearray):
            raise InvalidRequest("The file must be opened in binary mode")
        return bytes(chunk)


class _IterableChunks:
    def __init__(self, iterator: AsyncIterator[Any]) -> None:
        self._iterator = iterator

    def __aiter__(self) -> _IterableChunks:
        return self

    async def __anext__(self) -> bytes:
        while True:
            chunk = await self._iterator.__anext__()
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise InvalidRequest("Upload chunks must be bytes")
            if chunk:
                return bytes(chunk)


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
    ImageFormat.HEIF: frozenset({"heic", "heif", "hif"}),
    ImageFormat.AVIF: frozenset({"avif"}),
    ImageFormat.JXL: frozenset({"jxl"}),
}


def _looks_like_extension(suffix: str) -> bool:
    """``png``, ``html``, ``tar``: up to 5 ASCII letters and digits, at least one letter."""
    return 0 < len(suffix) <= 5 and suffix.isascii() and suffix.isalnum() and not suffix.isdigit()


def check_unstreamed(info: ImageInfo, max_pixels: int) -> None:
    """A lower pixel limit for the formats decoded whole (WebP, HEIF, AVIF, JPEG XL): their
    decoders need the whole file and full-size planes at once."""
    if info.format in WHOLE_FILE_FORMATS and info.pixels > max_pixels:
        raise ImageTooLarge(
            f"The {info.format.label} image is {info.width}x{info.height} pixels; "
            f"{info.format.label} is decoded whole, so its limit is {max_pixels} pixels",
            width=info.width,
            height=info.height,
            max_pixels=max_pixels,
        )
