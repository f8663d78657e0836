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
    HEIF = "heif"
    AVIF = "avif"
    JXL = "jxl"

    @property
    def mime(self) -> str:
        return _MIME[self]

    @property
    def label(self) -> str:
        """The name people know it by (``WebP``, ``JPEG XL``)."""
        return _LABEL[self]

    @property
    def pillow_name(self) -> str:
        return self.name

    @property
    def isobmff(self) -> bool:
        """HEIF and AVIF: an ISO base media file (``ftyp``, ``meta``, ``mdat`` boxes)."""
        return self in (ImageFormat.HEIF, ImageFormat.AVIF)

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
    ImageFormat.HEIF: "image/heic",
    ImageFormat.AVIF: "image/avif",
    ImageFormat.JXL: "image/jxl",
}
_LABEL = {
    ImageFormat.JPEG: "JPEG",
    ImageFormat.PNG: "PNG",
    ImageFormat.GIF: "GIF",
    ImageFormat.WEBP: "WebP",
    ImageFormat.HEIF: "HEIC/HEIF",
    ImageFormat.AVIF: "AVIF",
    ImageFormat.JXL: "JPEG XL",
}
_EXTENSION = {
    ImageFormat.JPEG: "jpg",
    ImageFormat.PNG: "png",
    ImageFormat.GIF: "gif",
    ImageFormat.WEBP: "webp",
    ImageFormat.HEIF: "heic",
    ImageFormat.AVIF: "avif",
    ImageFormat.JXL: "jxl",
}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SNIFF_BYTES = 64
"""The longest magic we look at: an ISO base media ``ftyp`` box with its brands."""
EARLY_SNIFF_BYTES = 16
"""Enough to refuse a file that is no image from its first chunk (an ``ftyp`` box's brands
beyond these only tell HEIF from AVIF; the format is decided again on :data:`SNIFF_BYTES`)."""
JXL_CODESTREAM = b"\xff\x0a"
JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
"""``ftyp`` brands of HEIF still images (``mif1``/``msf1`` are the generic ones)."""
AVIF_BRANDS = frozenset({b"avif", b"avis"})


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
    if head.startswith((JXL_CODESTREAM, JXL_CONTAINER)):
        return ImageFormat.JXL
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    raise InvalidFileFormat()


def _sniff_ftyp(head: bytes) -> ImageFormat:
    """AVIF when the major or a compatible brand says so, else HEIF for a HEIF brand."""
    size = int.from_bytes(head[:4], "big")
    end = min(len(head), size) if size >= 16 else 12
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    if any(brand in AVIF_BRANDS for brand in brands):
        return ImageFormat.AVIF
    if any(brand in HEIF_BRANDS for brand in brands):
        return ImageFormat.HEIF
    raise InvalidFileFormat()
