"""JPEG XL: header probing and the metadata allow-list.

A JPEG XL file is a bare codestream (``FF 0A``), which carries no metadata, or a container of
boxes. The container keeps ``JXL ``, ``ftyp``, ``jxll`` (level), ``jxlc``/``jxlp`` (the
codestream, whole or in parts) and ``jxli`` (the frame index); ``Exif``, ``xml `` (XMP),
``jumb`` (C2PA/JUMBF), ``brob`` (Brotli-compressed metadata), ``jbrd`` (JPEG reconstruction
data) and every other box go; the first ``Exif`` box becomes a minimal one holding only the
orientation (or goes), as for JPEG, since encoders that take the orientation from EXIF (Pillow's
plugin among them) leave it there and decoders report it from there. Boxes carry no absolute
offsets, so removing them needs no rewriting.

An animated JPEG XL is refused: the decoder we use gives only its first frame, and the
codestream's header says it is animated but not how many frames follow (each frame has its own
header, anywhere in the file), so no frame budget could be checked before decoding.
"""

from __future__ import annotations

import struct

from chitram_core.errors import InvalidImage
from chitram_core.images.kinds import JXL_CODESTREAM
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
from chitram_core.images.scan.isobmff import MAX_BOXES

_KEEP = frozenset({b"JXL ", b"ftyp", b"jxll", b"jxlc", b"jxlp", b"jxli"})
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


class _Bits:
    """Least-significant-bit-first reader, as the JPEG XL codestream is written."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise InvalidImage("Truncated JPEG XL file: it ends inside the size header")
            value |= ((self.data[byte] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return value

    def size(self) -> int:
        """``U32(1 + u(9), 1 + u(13), 1 + u(18), 1 + u(30))``."""
        return 1 + self.read((9, 13, 18, 30)[self.read(2)])


def _codestream(head: bytes) -> bytes:
    """The start of the codestream: the file itself, or the ``jxlc``/``jxlp`` payloads."""
    if head.startswith(JXL_CODESTREAM):
        return head
    parts: list[bytes] = []
    pos = 0
    for _ in range(MAX_BOXES):
        if pos + 8 > len(head) or sum(map(len, parts)) >= 64:
            break
        size, typ = struct.unpack_from(">I4s", head, pos)
        header = 8
        if size == 1:
            size = int.from_bytes(need(head[pos + 8 : pos + 16], 8, "JPEG XL", "box header"))
            header = 16
        end = len(head) if size == 0 else pos + size
        if size and size < header:
            raise InvalidImage(f"Malformed JPEG XL: box {typ!r} is shorter than its header")
        if typ == b"jxlc":
            parts.append(head[pos + header : end])
        elif typ == b"jxlp":
            parts.append(head[pos + header + 4 : end])
        pos = end
    if not parts and pos + 8 > len(head):
        raise InvalidImage("Truncated JPEG XL file: it ends before its codestream")
    if not parts:
        raise InvalidImage("No JPEG XL codestream box within the header")
    return b"".join(parts)


HEADER_BYTES = 64
"""Enough of the codestream for its size header and image metadata up to the animation flag."""
_PREVIEW_SIZE = ((6, 1), (8, 65), (10, 321), (12, 1345))
_PREVIEW_SIZE_DIV8 = ((0, 16), (0, 32), (5, 1), (9, 33))


def _u32(bits: _Bits, choices: tuple[tuple[int, int], ...]) -> int:
    """``U32(...)``: a 2-bit selector, then that choice's (bits, offset)."""
    count, offset = choices[bits.read(2)]
    return offset + bits.read(count)


def _skip_size(bits: _Bits) -> None:
    """A ``SizeHeader`` (the image's, or the intrinsic size)."""
    small = bits.read(1)
    if small:
        bits.read(5)
    else:
        bits.size()
    if bits.read(3) == 0:  # no aspect ratio: the width follows
        if small:
            bits.read(5)
        else:
            bits.size()


def _skip_preview(bits: _Bits) -> None:
    """A ``PreviewHeader``."""
    choices = _PREVIEW_SIZE_DIV8 if bits.read(1) else _PREVIEW_SIZE
    _u32(bits, choices)
    if bits.read(3) == 0:
        _u32(bits, choices)


def animated(code: bytes) -> bool:
    """Whether the codestream starting ``code`` (at its signature) declares an animation: the
    ``have_animation`` flag of its image metadata, after the size header."""
    if not code.startswith(JXL_CODESTREAM):
        raise InvalidImage("Malformed JPEG XL: the codestream has no signature")
    bits = _Bits(code[2:HEADER_BYTES])
    _skip_size(bits)
    if bits.read(1) or not bits.read(1):  # all_default, or no extra_fields
        return False
    bits.read(3)  # orientation
    if bits.read(1):  # have_intrinsic_size
        _skip_size(bits)
    if bits.read(1):  # have_preview
        _skip_preview(bits)
    return bool(bits.read(1))


def _refuse_animation(code: bytes) -> None:
    if animated(code):
        raise InvalidImage(
            "Animated JPEG XL is not accepted (its frames cannot be counted before decoding); "
            "upload the animation as GIF, WebP or APNG, or a still JPEG XL"
        )


def probe(head: bytes) -> tuple[int, int]:
    """The displayed size from the codestream's SizeHeader and orientation."""
    code = _codestream(head)
    if not code.startswith(JXL_CODESTREAM):
        raise InvalidImage("Malformed JPEG XL: the codestream has no signature")
    bits = _Bits(code[2:66])
    small = bits.read(1)
    height = 8 * (bits.read(5) + 1) if small else bits.size()
    ratio = bits.read(3)
    if ratio:
        num, den = _RATIOS[ratio]
        width = height * num // den
    else:
        width = 8 * (bits.read(5) + 1) if small else bits.size()
    orientation = 1
    if not bits.read(1) and bits.read(1):  # not all_default, extra_fields
        orientation = 1 + bits.read(3)
    return (height, width) if orientation > 4 else (width, height)


def parse(s: ScanState) -> Parser:
    """Walk the container's boxes and remove those not on the allow-list."""
    first = yield Read(2)
    if first == JXL_CODESTREAM:
        _refuse_animation(first + (yield Read(HEADER_BYTES - 2)))
        return  # a bare codestream: no boxes, no metadata
    header = first + need((yield Read(6)), 6, "JPEG XL", "box header")
    code = b""  # the start of the codestream, gathered from its boxes
    for _ in range(MAX_BOXES):
        start = s.offset - 8
        size, typ = struct.unpack_from(">I4s", header)
        length = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", need((yield Read(8)), 8, "JPEG XL", "box header"))
            length = 16
        if size == 0:  # the last box, to the end of the file
            if typ not in _KEEP:
                s.end = start
                break
            chunk = yield Read(64 * 1024)
            if typ in (b"jxlc", b"jxlp") and len(code) < HEADER_BYTES:
                code += chunk[4:] if typ == b"jxlp" else chunk
            while len(chunk) == 64 * 1024:
                chunk = yield Read(64 * 1024)
            break
        if size < length:
            raise InvalidImage(f"Malformed JPEG XL: box {typ!r} is shorter than its header")
        if typ == b"Exif" and s.exif is None and size - length <= MAX_EXIF_BYTES:
            payload = need((yield Read(size - length)), size - length, "JPEG XL", "Exif box")
            # The box starts with the offset of the TIFF header; some writers (Pillow's plugin)
            # leave that field out and start with the TIFF header itself.
            prefix = b"" if payload[:2] in (b"II", b"MM") else b"\x00\x00\x00\x00"
            skip = int.from_bytes(payload[:4], "big") + 4 if prefix else 0
            orientation, little = exif_orientation(payload[skip:])
            original = header[:length] + payload if length == 8 else b""
            s.exif = ExifBlock(start, size, orientation, little, original, prefix)
        elif typ in (b"jxlc", b"jxlp") and len(code) < HEADER_BYTES:
            skip = 4 if typ == b"jxlp" else 0  # a part's index comes first
            take = min(size - length, skip + HEADER_BYTES - len(code))
            code += need((yield Read(take)), take, "JPEG XL", "codestream box")[skip:]
            yield Skip(size - length - take)
        else:
            yield Skip(size - length)
            if typ not in _KEEP:
                s.remove(start, start + size)
        header = yield Read(8)
        if not header:
            break
        header = need(header, 8, "JPEG XL", "box header")
    else:
        raise InvalidImage(f"Malformed JPEG XL: more than {MAX_BOXES} boxes")
    if code:
        _refuse_animation(code)


def wrap_exif(payload: bytes) -> bytes:
    """An Exif box holding ``payload`` (the TIFF data, behind the offset field if the original
    box had one)."""
    return struct.pack(">I", 8 + len(payload)) + b"Exif" + payload
