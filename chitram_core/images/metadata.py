"""Metadata stripping without re-encoding: a streaming scanner that plans byte edits.

The upload streams through :class:`MetadataScanner` chunk by chunk. The scanner walks the
container structure (JPEG segments, PNG chunks, RIFF chunks, GIF blocks), skipping payloads by
counting, and keeps only the small pieces it must read (segment headers, the EXIF block it
rewrites). :meth:`MetadataScanner.finish` returns a list of :class:`Edit`; the stored object is
then produced by :func:`apply_edits` over a second read of the upload. No pixel is decoded or
re-encoded, so the image data is bit-identical.

What stays is an allow-list (docs/http-api.md#uploads); all else goes, including segments,
chunks and extensions nobody has invented yet (C2PA manifests, vendor blocks, private chunks):

- JPEG keeps the frame and scan structure (SOFn, DHT, DAC, DQT, DRI, DNL, SOS and the entropy
  data), APP0 JFIF (its embedded thumbnail zeroed out), APP2 ICC profiles byte for byte, APP14
  Adobe (reduced to its 12 defined bytes: it tells the decoder the colour transform) and the
  first APP1 Exif reduced to a minimal Exif holding only the Orientation tag (or removed when
  the orientation is 1, absent or not 2..8). Every other APPn (XMP in any form, Photoshop/IPTC,
  MPF, FlashPix, Ducky, C2PA/JUMBF in APP11, ...), COM and unknown markers go, and so do the
  bytes after the first EOI: MPF secondary images and vendor trailers live there, and a
  polyglot hides its payload there.
- PNG keeps IHDR, PLTE, IDAT, IEND, tRNS, gAMA, cHRM, sRGB, iCCP, cICP, sBIT, pHYs, bKGD and
  the APNG chunks acTL/fcTL/fdAT; the last eXIf becomes a minimal eXIf with the orientation (or
  goes); every other chunk and the bytes after IEND go.
- WebP keeps VP8, VP8L, VP8X, ALPH, ANIM, ANMF and ICCP; the first EXIF chunk becomes a
  minimal EXIF with the orientation (or goes); every other chunk goes, unknown sub-chunks
  inside ANMF frames too. The ANMF sizes, the VP8X flags (XMP always cleared, EXIF when no
  EXIF is left) and the RIFF size are patched to match; bytes after the RIFF end go. Keeping
  the orientation in WebP is deliberate: viewers that honour it would otherwise show the
  picture turned, and those that ignore it are unaffected.
- GIF keeps the image descriptors with their colour tables and image data, the graphic
  control extensions and the NETSCAPE2.0 loop count (both rewritten to their canonical bytes
  when extra sub-blocks follow); comments, plain text and every other application extension
  go, and so do the bytes after the trailer. A GIF without a trailer is left without one.

Orientation is taken from EXIF only, as browsers do. Pillow additionally falls back to a
``tiff:Orientation`` in XMP when EXIF has none; such (rare) files lose that XMP-only rotation,
so the stored file displays in Pillow the way it always displayed in browsers.

An empty edit list means "store the upload byte for byte".
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Sequence

import attrs

from chitram_core.errors import InvalidImage
from chitram_core.images.formats import PNG_SIGNATURE, ImageFormat

ORIENTATION_TAG = 0x0112
MAX_EXIF_BYTES = 1024 * 1024
"""EXIF blocks larger than this are dropped unread (their orientation too): memory stays bounded."""
MAX_EDITS = 10_000
"""More separate blocks to remove or rewrite than this is refused: the edit plan stays small.

Adjacent removals merge into one edit, so only junk interleaved with kept blocks counts; real
images have a handful. Without a cap, a 5 MB upload of alternating 12-byte chunks would plan
hundreds of thousands of edits.
"""


@attrs.frozen
class Edit:
    """Replace bytes ``[offset, offset + length)`` of the original with ``replacement``."""

    offset: int
    length: int
    replacement: bytes = b""

    @property
    def end(self) -> int:
        return self.offset + self.length


# --- the push parser machinery -----------------------------------------------------------


class _Read:
    """Ask for exactly ``n`` bytes (fewer only at end of input)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class _Skip:
    """Pass over ``remaining`` bytes without keeping them."""

    __slots__ = ("remaining",)

    def __init__(self, n: int) -> None:
        self.remaining = n


class _ScanEntropy:
    """Pass over JPEG entropy-coded data up to the next real marker; its code is sent back."""

    __slots__ = ("pending_ff",)

    def __init__(self) -> None:
        self.pending_ff = False


_Op = _Read | _Skip | _ScanEntropy
_Parser = Generator[_Op, bytes, None]


@attrs.define
class _Exif:
    """The EXIF block being rewritten: where it is and which orientation it carries."""

    offset: int
    length: int
    orientation: int | None
    little_endian: bool
    original: bytes


class MetadataScanner:
    """Plan the edits that strip metadata from an upload, fed chunk by chunk.

    ``feed`` never raises: a structural problem is remembered and raised by ``finish`` as
    :class:`InvalidImage`, so the caller can keep streaming the upload to its destination.
    Memory stays O(header): payloads are skipped by counting.
    """

    def __init__(self, fmt: ImageFormat) -> None:
        self.format = fmt
        self._offset = 0
        self._total = 0
        self._buf = bytearray()
        self._edits: list[Edit] = []
        self._exif: _Exif | None = None
        self._end: int | None = None
        self._error: InvalidImage | None = None
        self._result: list[Edit] | None = None
        self._webp_flags: tuple[int, int] | None = None  # (offset, original flag byte)
        self._webp_riff_end: int | None = None
        self._parser: _Parser = _PARSERS[fmt](self)
        self._op: _Op | None = None
        self._advance(None)

    # The driver --------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        if self._result is not None:
            raise RuntimeError("MetadataScanner.feed() called after finish()")
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        self._total += len(chunk)
        if self._op is None:
            return
        try:
            self._consume(chunk)
        except InvalidImage as exc:
            self._fail(exc)
        except (struct.error, IndexError, ValueError) as exc:
            self._fail(InvalidImage(f"Malformed {self.format.name} structure: {exc}"))

    def finish(self) -> list[Edit]:
        """The edits, sorted and non-overlapping; raises :class:`InvalidImage` if malformed."""
        if self._result is not None:
            return list(self._result)
        try:
            self._drain()
        except InvalidImage as exc:
            self._fail(exc)
        except (struct.error, IndexError, ValueError) as exc:
            self._fail(InvalidImage(f"Malformed {self.format.name} structure: {exc}"))
        if self._error is not None:
            raise self._error
        self._result = self._plan()
        return list(self._result)

    def _fail(self, exc: InvalidImage) -> None:
        if self._error is None:
            self._error = exc
        self._op = None
        self._parser.close()

    def _advance(self, data: bytes | None) -> None:
        try:
            op = next(self._parser) if data is None else self._parser.send(data)
            while isinstance(op, _Skip) and op.remaining == 0:
                op = self._parser.send(b"")
        except StopIteration:
            self._op = None
            return
        self._op = op

    def _consume(self, chunk: bytes) -> None:
        i, n = 0, len(chunk)
        while i < n and self._op is not None:
            op = self._op
            if isinstance(op, _Skip):
                take = min(op.remaining, n - i)
                op.remaining -= take
                i += take
                self._offset += take
                if op.remaining == 0:
                    self._advance(b"")
            elif isinstance(op, _Read):
                take = min(op.n - len(self._buf), n - i)
                self._buf += chunk[i : i + take]
                i += take
                self._offset += take
                if len(self._buf) == op.n:
                    data = bytes(self._buf)
                    self._buf.clear()
                    self._advance(data)
            else:
                i = self._scan_entropy(op, chunk, i)

    def _scan_entropy(self, op: _ScanEntropy, chunk: bytes, i: int) -> int:
        n = len(chunk)
        while i < n:
            if op.pending_ff:
                byte = chunk[i]
                i += 1
                self._offset += 1
                if byte == 0xFF:
                    continue
                op.pending_ff = False
                if byte == 0x00 or 0xD0 <= byte <= 0xD7:
                    continue
                self._advance(bytes((byte,)))
                return i
            j = chunk.find(b"\xff", i)
            if j < 0:
                self._offset += n - i
                return n
            self._offset += j + 1 - i
            i = j + 1
            op.pending_ff = True
        return i

    def _drain(self) -> None:
        """End of input: hand partial reads to the parser so it can decide, else fail."""
        for _ in range(4):
            op = self._op
            if op is None or self._error is not None:
                return
            if isinstance(op, _Read):
                data = bytes(self._buf)
                self._buf.clear()
                self._advance(data)
            elif isinstance(op, _Skip):
                raise InvalidImage(f"Truncated {self.format.name} file: a block runs past the end")
            else:
                raise InvalidImage("Truncated JPEG file: the image data has no end marker")
        raise InvalidImage(f"Truncated {self.format.name} file")

    # Planning ----------------------------------------------------------------------------

    def _remove(self, offset: int, end: int) -> None:
        if end <= offset:
            return
        last = self._edits[-1] if self._edits else None
        if last is not None and not last.replacement and last.end == offset:
            self._edits[-1] = Edit(last.offset, last.length + end - offset)  # one run of junk
        else:
            self._add(Edit(offset, end - offset))

    def _add(self, edit: Edit) -> None:
        if len(self._edits) >= MAX_EDITS:
            raise InvalidImage(
                f"Too many separate metadata blocks to remove (more than {MAX_EDITS})"
            )
        self._edits.append(edit)

    def _plan(self) -> list[Edit]:
        edits = list(self._edits)
        exif = self._exif
        exif_kept = False
        if exif is not None:
            replacement = b""
            if exif.orientation is not None and 2 <= exif.orientation <= 8:
                replacement = _WRAP_EXIF[self.format](
                    _minimal_tiff(exif.orientation, exif.little_endian)
                )
                exif_kept = True
            if replacement != exif.original:
                edits.append(Edit(exif.offset, exif.length, replacement))
        if self.format is ImageFormat.WEBP and self._webp_riff_end is not None:
            edits.extend(self._webp_patches(edits, exif_kept))
        if self._end is not None and self._total > self._end:
            edits.append(Edit(self._end, self._total - self._end))
        edits.sort(key=lambda e: e.offset)
        for before, after in itertools.pairwise(edits):
            if before.end > after.offset:  # pragma: no cover - parser invariant
                raise InvalidImage("Overlapping metadata blocks")
        return edits

    def _webp_patches(self, edits: list[Edit], exif_kept: bool) -> list[Edit]:
        assert self._webp_riff_end is not None
        delta = sum(len(e.replacement) - e.length for e in edits)
        patches: list[Edit] = []
        if self._webp_flags is not None:
            offset, flags = self._webp_flags
            new = flags & ~0x04  # XMP flag: every XMP chunk is gone
            if not exif_kept:
                new &= ~0x08
            if new != flags:
                patches.append(Edit(offset, 1, bytes((new,))))
        if delta:
            size = self._webp_riff_end - 8 + delta
            patches.append(Edit(4, 4, struct.pack("<I", size)))
        return patches


# --- EXIF ---------------------------------------------------------------------------------


def exif_orientation(tiff: bytes) -> tuple[int | None, bool]:
    """The IFD0 Orientation of a TIFF/EXIF block (None if absent) and its byte order."""
    if tiff.startswith(b"Exif\x00\x00"):
        tiff = tiff[6:]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None, True
    little = tiff[:2] == b"II"
    e = "<" if little else ">"
    magic, ifd = struct.unpack_from(e + "HI", tiff, 2)
    if magic != 42 or ifd + 2 > len(tiff):
        return None, little
    (count,) = struct.unpack_from(e + "H", tiff, ifd)
    for k in range(count):
        pos = ifd + 2 + 12 * k
        if pos + 12 > len(tiff):
            break
        tag, typ, _n = struct.unpack_from(e + "HHI", tiff, pos)
        if tag != ORIENTATION_TAG:
            continue
        if typ == 3:
            return struct.unpack_from(e + "H", tiff, pos + 8)[0], little
        if typ == 4:
            return struct.unpack_from(e + "I", tiff, pos + 8)[0], little
        return None, little
    return None, little


def _minimal_tiff(orientation: int, little_endian: bool) -> bytes:
    e = "<" if little_endian else ">"
    head = b"II*\x00" if little_endian else b"MM\x00*"
    return (
        head
        + struct.pack(e + "I", 8)
        + struct.pack(e + "H", 1)
        + struct.pack(e + "HHIHH", ORIENTATION_TAG, 3, 1, orientation, 0)
        + struct.pack(e + "I", 0)
    )


def _jpeg_exif_segment(tiff: bytes) -> bytes:
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(ctype + data)
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)


def _webp_chunk(ctype: bytes, data: bytes) -> bytes:
    return ctype + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b"")


_WRAP_EXIF: dict[ImageFormat, Callable[[bytes], bytes]] = {
    ImageFormat.JPEG: _jpeg_exif_segment,
    ImageFormat.PNG: lambda tiff: _png_chunk(b"eXIf", tiff),
    ImageFormat.WEBP: lambda tiff: _webp_chunk(b"EXIF", tiff),
    ImageFormat.GIF: lambda tiff: b"",
}


def _need(data: bytes, n: int, fmt: str, what: str) -> bytes:
    if len(data) < n:
        raise InvalidImage(f"Truncated {fmt} file: it ends inside the {what}")
    return data


# --- JPEG ---------------------------------------------------------------------------------

_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_JPEG_FRAME = frozenset({*range(0xC0, 0xD0), *range(0xDA, 0xE0)})
"""SOFn, DHT, DAC, SOS, DQT, DNL, DRI, DHP, EXP: the picture itself, never metadata."""
_JFIF_BYTES = 14  # "JFIF\0", version, units, densities, thumbnail width and height
_ADOBE_BYTES = 12  # "Adobe", version, flags0, flags1, colour transform
_ICC_PREFIX = b"ICC_PROFILE\x00"


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _parse_jpeg(s: MetadataScanner) -> _Parser:
    soi = yield _Read(2)
    if soi != b"\xff\xd8":
        raise InvalidImage("Malformed JPEG: missing start-of-image marker")
    in_scan = False
    while True:
        if in_scan:
            code = yield _ScanEntropy()
            start = s._offset - 2
        else:
            start = s._offset
            first = _need((yield _Read(1)), 1, "JPEG", "marker")
            if first[0] != 0xFF:
                raise InvalidImage(f"Malformed JPEG: expected a marker at byte {start}")
            code = b"\xff"
            while code[0] == 0xFF:
                code = _need((yield _Read(1)), 1, "JPEG", "marker")
        marker = code[0]
        in_scan = False
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:
            s._end = s._offset
            return
        if marker in (0xD8, 0x00):
            raise InvalidImage(f"Malformed JPEG: unexpected marker 0x{marker:02X} at byte {start}")
        (length,) = struct.unpack(">H", _need((yield _Read(2)), 2, "JPEG", "segment length"))
        if length < 2:
            raise InvalidImage(f"Malformed JPEG: segment length {length} at byte {start}")
        size = length - 2
        end = s._offset + size
        if marker in _JPEG_FRAME:
            yield _Skip(size)
            in_scan = marker == 0xDA
            continue
        # An application segment, a comment or an unknown marker: kept only when allowed.
        head = _need((yield _Read(min(size, 14))), min(size, 14), "JPEG", "segment")
        if marker == 0xE1 and head.startswith(b"Exif\x00\x00") and s._exif is None:
            rest = _need((yield _Read(size - len(head))), size - len(head), "JPEG", "APP1 segment")
            orientation, little = exif_orientation(head[6:] + rest)
            original = _jpeg_segment(marker, head + rest)
            s._exif = _Exif(start, end - start, orientation, little, original)
            continue
        yield _Skip(size - len(head))
        if marker == 0xE2 and head.startswith(_ICC_PREFIX):
            continue  # ICC profiles are kept byte for byte
        kept: bytes | None = None
        if marker == 0xE0 and head.startswith(b"JFIF\x00") and size >= _JFIF_BYTES:
            kept = head[:12] + b"\x00\x00"  # its thumbnail (a copy of the picture) goes
        elif marker == 0xEE and head.startswith(b"Adobe") and size >= _ADOBE_BYTES:
            kept = head[:_ADOBE_BYTES]
        if kept is None:
            s._remove(start, end)
        elif len(kept) != size or kept != head[: len(kept)]:
            s._add(Edit(start, end - start, _jpeg_segment(marker, kept)))


# --- PNG ----------------------------------------------------------------------------------

_PNG_KEEP = frozenset(
    {
        *(b"IHDR", b"PLTE", b"IDAT", b"IEND"),
        *(b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"sBIT", b"pHYs", b"bKGD"),
        *(b"acTL", b"fcTL", b"fdAT"),
    }
)
"""Chunks kept as they are; eXIf is kept reduced to the orientation; everything else goes."""


def _parse_png(s: MetadataScanner) -> _Parser:
    sig = yield _Read(8)
    if sig != PNG_SIGNATURE:
        raise InvalidImage("Malformed PNG: bad signature")
    first = True
    while True:
        start = s._offset
        header = _need((yield _Read(8)), 8, "PNG", "chunk list (no IEND chunk)")
        length, ctype = struct.unpack(">I4s", header)
        if length > 0x7FFFFFFF:
            raise InvalidImage(f"Malformed PNG: chunk length {length} at byte {start}")
        if first and ctype != b"IHDR":
            raise InvalidImage("Malformed PNG: the first chunk must be IHDR")
        first = False
        end = start + 12 + length
        if ctype == b"eXIf":
            if length <= MAX_EXIF_BYTES:
                payload = _need((yield _Read(length)), length, "PNG", "eXIf chunk")
                yield _Skip(4)
                orientation, little = exif_orientation(payload)
            else:
                yield _Skip(length + 4)
                orientation, little = None, True
            if s._exif is not None:  # Pillow reads the last eXIf: keep that one's orientation
                s._remove(s._exif.offset, s._exif.offset + s._exif.length)
            s._exif = _Exif(start, end - start, orientation, little, b"")
            if length <= MAX_EXIF_BYTES:
                s._exif.original = _png_chunk(b"eXIf", payload)
        else:
            yield _Skip(length + 4)
            if ctype not in _PNG_KEEP:
                s._remove(start, end)
        if ctype == b"IEND":
            s._end = end
            return


# --- WebP ---------------------------------------------------------------------------------

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


def _parse_webp_frame(s: MetadataScanner, start: int, size: int) -> _Parser:
    """Walk an ANMF payload: drop unknown sub-chunks and patch the ANMF size to match."""
    if size < _ANMF_HEADER:
        raise InvalidImage("Malformed WebP: ANMF chunk too small")
    yield _Skip(_ANMF_HEADER)
    frame_end = start + 8 + size
    removed = 0
    while s._offset < frame_end:
        sub = s._offset
        if sub + 8 > frame_end:
            raise InvalidImage("Malformed WebP: a frame's sub-chunk header runs past the ANMF size")
        header = _need((yield _Read(8)), 8, "WebP", "frame sub-chunk header")
        ctype, _size, padded = _webp_chunk_bounds(header, sub, frame_end, "ANMF size")
        yield _Skip(padded)
        if ctype not in _WEBP_FRAME_KEEP:
            s._remove(sub, sub + 8 + padded)
            removed += 8 + padded
    if removed:
        s._add(Edit(start + 4, 4, struct.pack("<I", size - removed)))


def _parse_webp(s: MetadataScanner) -> _Parser:
    header = _need((yield _Read(12)), 12, "WebP", "RIFF header")
    if header[:4] != b"RIFF" or header[8:12] != b"WEBP":
        raise InvalidImage("Malformed WebP: bad RIFF header")
    (riff_size,) = struct.unpack_from("<I", header, 4)
    riff_end = 8 + riff_size
    if riff_size < 4:
        raise InvalidImage("Malformed WebP: RIFF size too small")
    s._webp_riff_end = riff_end
    while s._offset < riff_end:
        start = s._offset
        if start + 8 > riff_end:
            raise InvalidImage("Malformed WebP: a chunk header runs past the RIFF size")
        chunk_header = _need((yield _Read(8)), 8, "WebP", "chunk header")
        ctype, size, padded = _webp_chunk_bounds(chunk_header, start, riff_end, "RIFF size")
        end = start + 8 + padded
        if ctype == b"VP8X" and start == 12:
            if size < 10 or size > 64:
                raise InvalidImage("Malformed WebP: bad VP8X chunk size")
            payload = _need((yield _Read(size)), size, "WebP", "VP8X chunk")
            yield _Skip(padded - size)
            s._webp_flags = (start + 8, payload[0])
        elif ctype == b"EXIF" and s._exif is None:
            if size <= MAX_EXIF_BYTES:
                payload = _need((yield _Read(size)), size, "WebP", "EXIF chunk")
                yield _Skip(padded - size)
                orientation, little = exif_orientation(payload)
                original = chunk_header + payload + (b"\x00" if padded > size else b"")
            else:
                yield _Skip(padded)
                orientation, little, original = None, True, b""
            s._exif = _Exif(start, end - start, orientation, little, original)
        elif ctype == b"ANMF":
            yield from _parse_webp_frame(s, start, size)
            yield _Skip(padded - size)
        else:
            yield _Skip(padded)
            if ctype not in _WEBP_KEEP:
                s._remove(start, end)
    s._end = riff_end


# --- GIF ----------------------------------------------------------------------------------

_GIF_NETSCAPE = b"NETSCAPE2.0"
_GIF_GRAPHIC_CONTROL = 0xF9
_GIF_APPLICATION = 0xFF


def _gif_sub_blocks(s: MetadataScanner) -> Generator[_Op, bytes, int]:
    """Skip data sub-blocks up to the terminator; how many there were."""
    count = 0
    while True:
        size = _need((yield _Read(1)), 1, "GIF", "data sub-blocks")[0]
        if size == 0:
            return count
        count += 1
        yield _Skip(size)


def _gif_block(s: MetadataScanner) -> Generator[_Op, bytes, bytes | None]:
    """Read one data sub-block; None at the terminator."""
    size = _need((yield _Read(1)), 1, "GIF", "extension")[0]
    if size == 0:
        return None
    return _need((yield _Read(size)), size, "GIF", "extension")


def _gif_extension(s: MetadataScanner) -> Generator[_Op, bytes, tuple[bytes | None, bool]]:
    """Walk one extension (after ``!``): (what to store instead or None to drop, unchanged).

    Kept: the graphic control extension (its 4 bytes: delay, disposal, transparency) and the
    NETSCAPE2.0 loop count, both in their canonical form so that no sub-block rides along.
    Comments, plain text and every other application extension go.
    """
    label = _need((yield _Read(1)), 1, "GIF", "extension")[0]
    block = yield from _gif_block(s)
    if block is None:
        return None, False
    if label == _GIF_APPLICATION and block == _GIF_NETSCAPE:
        # Pillow and browsers read the loop count from the first sub-block after the name.
        data = yield from _gif_block(s)
        if data is None:
            return None, False
        more = yield from _gif_sub_blocks(s)
        if len(data) < 3 or data[0] != 1:
            return None, False
        kept = b"!\xff\x0b" + _GIF_NETSCAPE + b"\x03" + data[:3] + b"\x00"
        return kept, len(data) == 3 and more == 0
    more = yield from _gif_sub_blocks(s)
    if label == _GIF_GRAPHIC_CONTROL and len(block) >= 4:
        return b"!\xf9\x04" + block[:4] + b"\x00", len(block) == 4 and more == 0
    return None, False


def _parse_gif(s: MetadataScanner) -> _Parser:
    header = _need((yield _Read(13)), 13, "GIF", "logical screen descriptor")
    if header[:6] not in (b"GIF87a", b"GIF89a"):
        raise InvalidImage("Malformed GIF: bad signature")
    flags = header[10]
    if flags & 0x80:
        yield _Skip(3 << ((flags & 7) + 1))
    while True:
        start = s._offset
        intro = yield _Read(1)
        if not intro:
            return  # no trailer: tolerated (Pillow and browsers accept it), nothing after it
        if intro == b";":
            s._end = s._offset
            return
        if intro == b"!":
            kept, unchanged = yield from _gif_extension(s)
            if kept is None:
                s._remove(start, s._offset)
            elif not unchanged:
                s._add(Edit(start, s._offset - start, kept))
        elif intro == b",":
            desc = _need((yield _Read(9)), 9, "GIF", "image descriptor")
            if desc[8] & 0x80:
                yield _Skip(3 << ((desc[8] & 7) + 1))
            _need((yield _Read(1)), 1, "GIF", "image data")
            yield from _gif_sub_blocks(s)
        else:
            raise InvalidImage(f"Malformed GIF: unknown block 0x{intro[0]:02X} at byte {start}")


_PARSERS: dict[ImageFormat, Callable[[MetadataScanner], _Parser]] = {
    ImageFormat.JPEG: _parse_jpeg,
    ImageFormat.PNG: _parse_png,
    ImageFormat.WEBP: _parse_webp,
    ImageFormat.GIF: _parse_gif,
}


# --- applying edits -----------------------------------------------------------------------


async def apply_edits(chunks: AsyncIterable[bytes], edits: Sequence[Edit]) -> AsyncIterator[bytes]:
    """Stream ``chunks`` with ``edits`` applied; chunks no edit touches pass through as is."""
    pos = 0
    k = 0
    async for chunk in chunks:
        pieces, k = _edit_chunk(chunk, pos, edits, k)
        for piece in pieces:
            if piece:
                yield piece
        pos += len(chunk)
    while k < len(edits) and edits[k].offset == pos and edits[k].length == 0:
        if edits[k].replacement:
            yield edits[k].replacement
        k += 1
    if k < len(edits):
        raise InvalidImage("The file ended before the planned metadata edits")


def _edit_chunk(chunk: bytes, pos: int, edits: Sequence[Edit], k: int) -> tuple[list[bytes], int]:
    """Output pieces for one chunk starting at absolute ``pos``, and the next edit index."""
    end = pos + len(chunk)
    if k >= len(edits) or edits[k].offset >= end:
        return [chunk], k
    out: list[bytes] = []
    i = pos
    while i < end:
        if k < len(edits) and edits[k].offset <= i:
            edit = edits[k]
            if edit.offset == i:
                out.append(edit.replacement)
            if edit.end > end:
                break
            i = edit.end
            k += 1
            continue
        stop = min(end, edits[k].offset) if k < len(edits) else end
        out.append(chunk[i - pos : stop - pos])
        i = stop
    return out, k


def strip_bytes(data: bytes, fmt: ImageFormat) -> bytes:
    """Strip metadata from an in-memory image (tests, small files)."""
    scanner = MetadataScanner(fmt)
    scanner.feed(data)
    return apply_to_bytes(data, scanner.finish())


def apply_to_bytes(data: bytes, edits: Sequence[Edit]) -> bytes:
    out = []
    pos = 0
    for edit in edits:
        out.append(data[pos : edit.offset])
        out.append(edit.replacement)
        pos = edit.end
    out.append(data[pos:])
    return b"".join(out)
