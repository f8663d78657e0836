"""PNG: keep the picture's chunks (APNG's too) and a minimal eXIf; drop the rest.

See :mod:`chitram_core.images.metadata` for the allow-list as a whole.
"""

from __future__ import annotations

import struct
import zlib

from chitram_core.errors import InvalidImage
from chitram_core.images.kinds import PNG_SIGNATURE
from chitram_core.images.scan.base import (
    MAX_EXIF_BYTES,
    ExifBlock,
    Parser,
    Read,
    ScanState,
    Skip,
    exif_orientation,
    need,
)

_PNG_KEEP = frozenset(
    {
        *(b"IHDR", b"PLTE", b"IDAT", b"IEND"),
        *(b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"sBIT", b"pHYs", b"bKGD"),
        *(b"acTL", b"fcTL", b"fdAT"),
    }
)
"""Chunks kept as they are; eXIf is kept reduced to the orientation; everything else goes."""


def parse(s: ScanState) -> Parser:
    sig = yield Read(8)
    if sig != PNG_SIGNATURE:
        raise InvalidImage("Malformed PNG: bad signature")
    first = True
    canvas = 0
    controls = 0
    while True:
        start = s.offset
        header = need((yield Read(8)), 8, "PNG", "chunk list (no IEND chunk)")
        length, ctype = struct.unpack(">I4s", header)
        if length > 0x7FFFFFFF:
            raise InvalidImage(f"Malformed PNG: chunk length {length} at byte {start}")
        if first and ctype != b"IHDR":
            raise InvalidImage("Malformed PNG: the first chunk must be IHDR")
        first = False
        end = start + 12 + length
        if ctype == b"IHDR" and length >= 8:
            ihdr = need((yield Read(8)), 8, "PNG", "IHDR chunk")
            canvas = int.from_bytes(ihdr[:4], "big") * int.from_bytes(ihdr[4:8], "big")
            yield Skip(length - 8 + 4)
        elif ctype == b"acTL" and length >= 4 and s.frames == 0:
            # The declared frame count, from the header, before any frame is read.
            control = need((yield Read(4)), 4, "PNG", "acTL chunk")
            s.frame(canvas, int.from_bytes(control, "big"))
            yield Skip(length - 4 + 4)
        elif ctype == b"eXIf":
            if length <= MAX_EXIF_BYTES:
                payload = need((yield Read(length)), length, "PNG", "eXIf chunk")
                yield Skip(4)
                orientation, little = exif_orientation(payload)
            else:
                yield Skip(length + 4)
                orientation, little = None, True
            if s.exif is not None:  # Pillow reads the last eXIf: keep that one's orientation
                s.remove(s.exif.offset, s.exif.offset + s.exif.length)
            s.exif = ExifBlock(start, end - start, orientation, little, b"")
            if length <= MAX_EXIF_BYTES:
                s.exif.original = chunk(b"eXIf", payload)
        else:
            yield Skip(length + 4)
            if ctype == b"fcTL":
                controls += 1
                if controls > s.frames:  # more frames than acTL declared count too
                    s.frame(canvas)
            if ctype not in _PNG_KEEP:
                s.remove(start, end)
        if ctype == b"IEND":
            s.end = end
            return


def chunk(ctype: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(ctype + data)
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)


def wrap_exif(tiff: bytes) -> bytes:
    """An eXIf chunk holding ``tiff``."""
    return chunk(b"eXIf", tiff)
