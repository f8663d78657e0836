"""The accepted image formats and how one is recognised from its first bytes.

A leaf of :mod:`chitram_core.images` (no Pillow, nothing of the package): header probing and
verification (:mod:`~chitram_core.images.formats`) and the metadata scanners
(:mod:`~chitram_core.images.metadata`, :mod:`~chitram_core.images.scan`) both build on it.
"""

from __future__ import annotations

import enum

from chitram_core.errors import InvalidFileFormat


class ImageFormat(enum.Enum):
    """The accepted formats; the value is a stable lower-case name."""

    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    WEBP = "webp"

    @property
    def mime(self) -> str:
        return _MIME[self]

    @property
    def pillow_name(self) -> str:
        return self.name

    @property
    def extension(self) -> str:
        return _EXTENSION[self]

    @classmethod
    def from_mime(cls, mime: str) -> ImageFormat:
        for fmt in cls:
            if fmt.mime == mime:
                return fmt
        raise InvalidFileFormat(f"Unsupported content type {mime!r}", content_type=mime)


_MIME = {
    ImageFormat.JPEG: "image/jpeg",
    ImageFormat.PNG: "image/png",
    ImageFormat.GIF: "image/gif",
    ImageFormat.WEBP: "image/webp",
}
_EXTENSION = {
    ImageFormat.JPEG: "jpg",
    ImageFormat.PNG: "png",
    ImageFormat.GIF: "gif",
    ImageFormat.WEBP: "webp",
}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SNIFF_BYTES = 12
"""The longest magic we look at (RIFF....WEBP)."""


def sniff(head: bytes) -> ImageFormat:
    """Decide the format from magic bytes alone; the declared type and filename never count."""
    if head.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if head.startswith(PNG_SIGNATURE):
        return ImageFormat.PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageFormat.GIF
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    raise InvalidFileFormat()
