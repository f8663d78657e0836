"""WebP: keep the picture's chunks (frames' too) and a minimal EXIF; patch the sizes and flags.

See :mod:`chitram_core.images.metadata` for the allow-list as a whole.
"""

from __future__ import annotations

import struct

from chitram_core.errors import InvalidImage
from chitram_core.images.scan.base import (
    MAX_EXIF_BYTES,
    Edit,
    ExifBlock,
    Parser,
    Read,
    ScanState,
    Skip,
    exif_orientation,
    need,
)

_WEBP_KEEP = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
"""Chunks kept as they are; the first EXIF is kept reduced to the orientation."""
_WEBP_FRAME_KEEP = frozenset({b"ALPH", b"VP8 ", b"VP8L"})
"""What an ANMF frame keeps of its sub-chunks (the format allows unknown ones there too)."""
_ANMF_HEADER = 16


def _webp_chunk_bounds(header: bytes, start: int, limit: int, where: str) -> tuple[bytes, int, int]:
    """The type, payload size and padded size of a chunk whose header started at ``start``."""
    ctype = header[:4]
    (size,) = struct.unpack_from("<I", header, 4)
    padded = size + (size & 1)
    if start + 8 + padded > limit:
        if start + 8 + size == limit:  # a missing final pad byte is tolerated
            padded = size
        else:
            raise InvalidImage(f"Malformed WebP: chunk {ctype!r} runs past the {where}")
    return ctype, size, padded


def _parse_frame(s: ScanState, start: int, size: int) -> Parser:
    """Walk an ANMF payload: drop unknown sub-chunks and patch the ANMF size to match."""
    if size < _ANMF_HEADER:
        raise InvalidImage("Malformed WebP: ANMF chunk too small")
    yield Skip(_ANMF_HEADER)
    frame_end = start + 8 + size
    removed = 0
    while s.offset < frame_end:
        sub = s.offset
        if sub + 8 > frame_end:
            raise InvalidImage("Malformed WebP: a frame's sub-chunk header runs past the ANMF size")
        header = need((yield Read(8)), 8, "WebP", "frame sub-chunk header")
        ctype, _size, padded = _webp_chunk_bounds(header, sub, frame_end, "ANMF size")
        yield Skip(padded)
        if ctype not in _WEBP_FRAME_KEEP:
            s.remove(sub, sub + 8 + padded)
            removed += 8 + padded
    if removed:
        s.add(Edit(start + 4, 4, struct.pack("<I", size - removed)))


def parse(s: ScanState) -> Parser:
    header = need((yield Read(12)), 12, "WebP", "RIFF header")
    if header[:4] != b"RIFF" or header[8:12] != b"WEBP":
        raise InvalidImage("Malformed WebP: bad RIFF header")
    (riff_size,) = struct.unpack_from("<I", header, 4)
    riff_end = 8 + riff_size
    if riff_size < 4:
        raise InvalidImage("Malformed WebP: RIFF size too small")
    s.webp_riff_end = riff_end
    canvas = 0
    while s.offset < riff_end:
        start = s.offset
        if start + 8 > riff_end:
            raise InvalidImage("Malformed WebP: a chunk header runs past the RIFF size")
        chunk_header = need((yield Read(8)), 8, "WebP", "chunk header")
        ctype, size, padded = _webp_chunk_bounds(chunk_header, start, riff_end, "RIFF size")
        end = start + 8 + padded
        if ctype == b"VP8X" and start == 12:
            if size < 10 or size > 64:
                raise InvalidImage("Malformed WebP: bad VP8X chunk size")
            payload = need((yield Read(size)), size, "WebP", "VP8X chunk")
            yield Skip(padded - size)
            s.webp_flags = (start + 8, payload[0])
            canvas = (int.from_bytes(payload[4:7], "little") + 1) * (
                int.from_bytes(payload[7:10], "little") + 1
            )
        elif ctype == b"EXIF" and s.exif is None:
            if size <= MAX_EXIF_BYTES:
                payload = need((yield Read(size)), size, "WebP", "EXIF chunk")
                yield Skip(padded - size)
                orientation, little = exif_orientation(payload)
                original = chunk_header + payload + (b"\x00" if padded > size else b"")
            else:
                yield Skip(padded)
                orientation, little, original = None, True, b""
            s.exif = ExifBlock(start, end - start, orientation, little, original)
        elif ctype == b"ANMF":
            s.frame(canvas)  # each frame is composed onto the whole canvas
            yield from _parse_frame(s, start, size)
            yield Skip(padded - size)
        else:
            yield Skip(padded)
            if ctype not in _WEBP_KEEP:
                s.remove(start, end)
    s.end = riff_end


def chunk(ctype: bytes, data: bytes) -> bytes:
    return ctype + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b"")


def wrap_exif(tiff: bytes) -> bytes:
    """An EXIF chunk holding ``tiff``."""
    return chunk(b"EXIF", tiff)
