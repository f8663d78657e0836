"""JPEG: keep the frame and scan structure, JFIF, ICC, Adobe and a minimal Exif; drop the rest.

See :mod:`chitram_core.images.metadata` for the allow-list as a whole.
"""

from __future__ import annotations

import struct

from chitram_core.errors import InvalidImage
from chitram_core.images.scan.base import (
    Edit,
    ExifBlock,
    Parser,
    Read,
    ScanEntropy,
    ScanState,
    Skip,
    exif_orientation,
    need,
)

_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_FRAME = frozenset({*range(0xC0, 0xD0), *range(0xDA, 0xE0)})
"""SOFn, DHT, DAC, SOS, DQT, DNL, DRI, DHP, EXP: the picture itself, never metadata."""
_JFIF_BYTES = 14  # "JFIF\0", version, units, densities, thumbnail width and height
_ADOBE_BYTES = 12  # "Adobe", version, flags0, flags1, colour transform
_ICC_PREFIX = b"ICC_PROFILE\x00"


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def parse(s: ScanState) -> Parser:
    soi = yield Read(2)
    if soi != b"\xff\xd8":
        raise InvalidImage("Malformed JPEG: missing start-of-image marker")
    in_scan = False
    while True:
        if in_scan:
            code = yield ScanEntropy()
            start = s.offset - 2
        else:
            start = s.offset
            first = need((yield Read(1)), 1, "JPEG", "marker")
            if first[0] != 0xFF:
                raise InvalidImage(f"Malformed JPEG: expected a marker at byte {start}")
            code = b"\xff"
            while code[0] == 0xFF:
                code = need((yield Read(1)), 1, "JPEG", "marker")
        marker = code[0]
        in_scan = False
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:
            s.end = s.offset
            return
        if marker in (0xD8, 0x00):
            raise InvalidImage(f"Malformed JPEG: unexpected marker 0x{marker:02X} at byte {start}")
        (length,) = struct.unpack(">H", need((yield Read(2)), 2, "JPEG", "segment length"))
        if length < 2:
            raise InvalidImage(f"Malformed JPEG: segment length {length} at byte {start}")
        size = length - 2
        end = s.offset + size
        if marker in _JPEG_FRAME:
            yield Skip(size)
            in_scan = marker == 0xDA
            continue
        # An application segment, a comment or an unknown marker: kept only when allowed.
        head = need((yield Read(min(size, 14))), min(size, 14), "JPEG", "segment")
        if marker == 0xE1 and head.startswith(b"Exif\x00\x00") and s.exif is None:
            rest = need((yield Read(size - len(head))), size - len(head), "JPEG", "APP1 segment")
            orientation, little = exif_orientation(head[6:] + rest)
            original = _jpeg_segment(marker, head + rest)
            s.exif = ExifBlock(start, end - start, orientation, little, original)
            continue
        yield Skip(size - len(head))
        if marker == 0xE2 and head.startswith(_ICC_PREFIX):
            continue  # ICC profiles are kept byte for byte
        kept: bytes | None = None
        if marker == 0xE0 and head.startswith(b"JFIF\x00") and size >= _JFIF_BYTES:
            kept = head[:12] + b"\x00\x00"  # its thumbnail (a copy of the picture) goes
        elif marker == 0xEE and head.startswith(b"Adobe") and size >= _ADOBE_BYTES:
            kept = head[:_ADOBE_BYTES]
        if kept is None:
            s.remove(start, end)
        elif len(kept) != size or kept != head[: len(kept)]:
            s.add(Edit(start, end - start, _jpeg_segment(marker, kept)))


def wrap_exif(tiff: bytes) -> bytes:
    """An APP1 Exif segment holding ``tiff``."""
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
