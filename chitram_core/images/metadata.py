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
- HEIF and AVIF keep their boxes in place (item locations are absolute offsets): the data of
  Exif items becomes an empty EXIF, that of XMP (``mime``) and ``uri `` items spaces, and
  top-level boxes other than ftyp, meta, mdat and moov become zeroed ``free`` boxes
  (:mod:`chitram_core.images.scan.isobmff`).
- JPEG XL keeps a bare codestream as it is; a container keeps JXL, ftyp, jxll, jxlc, jxlp and
  jxli and loses every other box, Exif, XMP and JUMBF included
  (:mod:`chitram_core.images.scan.jxl`).

Orientation is taken from EXIF only, as browsers do. Pillow additionally falls back to a
``tiff:Orientation`` in XMP when EXIF has none; such (rare) files lose that XMP-only rotation,
so the stored file displays in Pillow the way it always displayed in browsers.

An empty edit list means "store the upload byte for byte".
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence

from chitram_core.errors import ImageTooLarge, InvalidImage
from chitram_core.images.kinds import ImageFormat
from chitram_core.images.scan import gif, isobmff, jpeg, jxl, png, webp
from chitram_core.images.scan.base import (
    MAX_EDITS,
    MAX_EXIF_BYTES,
    ORIENTATION_TAG,
    Edit,
    FrameBudget,
    Op,
    Parser,
    Read,
    ScanEntropy,
    ScanState,
    Skip,
    exif_orientation,
    minimal_tiff,
)

__all__ = [
    "MAX_EDITS",
    "MAX_EXIF_BYTES",
    "ORIENTATION_TAG",
    "Edit",
    "FrameBudget",
    "MetadataScanner",
    "apply_edits",
    "apply_to_bytes",
    "exif_orientation",
    "strip_bytes",
]


class MetadataScanner(ScanState):
    """Plan the edits that strip metadata from an upload, fed chunk by chunk.

    ``feed`` never raises: a structural problem is remembered and raised by ``finish`` as
    :class:`InvalidImage` (an animation past ``budget``, counted from its frame headers, as
    :class:`ImageTooLarge`), so the caller can keep streaming the upload to its destination.
    Memory stays O(header): payloads are skipped by counting.
    """

    def __init__(self, fmt: ImageFormat, budget: FrameBudget | None = None) -> None:
        super().__init__(budget)
        self.format = fmt
        self._total = 0
        self._buf = bytearray()
        self._error: InvalidImage | ImageTooLarge | None = None
        self._result: list[Edit] | None = None
        self._parser: Parser = _PARSERS[fmt](self)
        self._op: Op | None = None
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
        except (InvalidImage, ImageTooLarge) as exc:
            self._fail(exc)
        except (struct.error, IndexError, ValueError) as exc:
            self._fail(InvalidImage(f"Malformed {self.format.name} structure: {exc}"))

    def finish(self) -> list[Edit]:
        """The edits, sorted and non-overlapping; raises :class:`InvalidImage` if malformed."""
        if self._result is not None:
            return list(self._result)
        try:
            self._drain()
        except (InvalidImage, ImageTooLarge) as exc:
            self._fail(exc)
        except (struct.error, IndexError, ValueError) as exc:
            self._fail(InvalidImage(f"Malformed {self.format.name} structure: {exc}"))
        if self._error is not None:
            raise self._error
        self._result = self._plan()
        return list(self._result)

    def _fail(self, exc: InvalidImage | ImageTooLarge) -> None:
        if self._error is None:
            self._error = exc
        self._op = None
        self._parser.close()

    def _advance(self, data: bytes | None) -> None:
        try:
            op = next(self._parser) if data is None else self._parser.send(data)
            while isinstance(op, Skip) and op.remaining == 0:
                op = self._parser.send(b"")
        except StopIteration:
            self._op = None
            return
        self._op = op

    def _consume(self, chunk: bytes) -> None:
        i, n = 0, len(chunk)
        while i < n and self._op is not None:
            op = self._op
            if isinstance(op, Skip):
                take = min(op.remaining, n - i)
                op.remaining -= take
                i += take
                self.offset += take
                if op.remaining == 0:
                    self._advance(b"")
            elif isinstance(op, Read):
                take = min(op.n - len(self._buf), n - i)
                self._buf += chunk[i : i + take]
                i += take
                self.offset += take
                if len(self._buf) == op.n:
                    data = bytes(self._buf)
                    self._buf.clear()
                    self._advance(data)
            else:
                i = self._scan_entropy(op, chunk, i)

    def _scan_entropy(self, op: ScanEntropy, chunk: bytes, i: int) -> int:
        n = len(chunk)
        while i < n:
            if op.pending_ff:
                byte = chunk[i]
                i += 1
                self.offset += 1
                if byte == 0xFF:
                    continue
                op.pending_ff = False
                if byte == 0x00 or 0xD0 <= byte <= 0xD7:
                    continue
                self._advance(bytes((byte,)))
                return i
            j = chunk.find(b"\xff", i)
            if j < 0:
                self.offset += n - i
                return n
            self.offset += j + 1 - i
            i = j + 1
            op.pending_ff = True
        return i

    def _drain(self) -> None:
        """End of input: hand partial reads to the parser so it can decide, else fail."""
        for _ in range(4):
            op = self._op
            if op is None or self._error is not None:
                return
            if isinstance(op, Read):
                data = bytes(self._buf)
                self._buf.clear()
                self._advance(data)
            elif isinstance(op, Skip):
                raise InvalidImage(f"Truncated {self.format.name} file: a block runs past the end")
            else:
                raise InvalidImage("Truncated JPEG file: the image data has no end marker")
        raise InvalidImage(f"Truncated {self.format.name} file")

    # Planning ----------------------------------------------------------------------------

    def _plan(self) -> list[Edit]:
        edits = list(self.edits)
        exif = self.exif
        exif_kept = False
        if exif is not None:
            replacement = b""
            if exif.orientation is not None and 2 <= exif.orientation <= 8:
                replacement = _WRAP_EXIF[self.format](
                    exif.prefix + minimal_tiff(exif.orientation, exif.little_endian)
                )
                exif_kept = True
            if replacement != exif.original:
                edits.append(Edit(exif.offset, exif.length, replacement))
        if self.format is ImageFormat.WEBP and self.webp_riff_end is not None:
            edits.extend(self._webp_patches(edits, exif_kept))
        if self.end is not None and self._total > self.end:
            edits.append(Edit(self.end, self._total - self.end))
        edits.sort(key=lambda e: e.offset)
        for before, after in itertools.pairwise(edits):
            if before.end > after.offset:  # pragma: no cover - parser invariant
                raise InvalidImage("Overlapping metadata blocks")
        return edits

    def _webp_patches(self, edits: list[Edit], exif_kept: bool) -> list[Edit]:
        assert self.webp_riff_end is not None
        delta = sum(len(e.replacement) - e.length for e in edits)
        patches: list[Edit] = []
        if self.webp_flags is not None:
            offset, flags = self.webp_flags
            new = flags & ~0x04  # XMP flag: every XMP chunk is gone
            if not exif_kept:
                new &= ~0x08
            if new != flags:
                patches.append(Edit(offset, 1, bytes((new,))))
        if delta:
            size = self.webp_riff_end - 8 + delta
            patches.append(Edit(4, 4, struct.pack("<I", size)))
        return patches


_PARSERS: dict[ImageFormat, Callable[[ScanState], Parser]] = {
    ImageFormat.JPEG: jpeg.parse,
    ImageFormat.PNG: png.parse,
    ImageFormat.WEBP: webp.parse,
    ImageFormat.GIF: gif.parse,
    ImageFormat.HEIF: isobmff.parse,
    ImageFormat.AVIF: isobmff.parse,
    ImageFormat.JXL: jxl.parse,
}
_WRAP_EXIF: dict[ImageFormat, Callable[[bytes], bytes]] = {
    ImageFormat.JPEG: jpeg.wrap_exif,
    ImageFormat.PNG: png.wrap_exif,
    ImageFormat.WEBP: webp.wrap_exif,
    ImageFormat.GIF: lambda tiff: b"",
    ImageFormat.HEIF: isobmff.wrap_exif,
    ImageFormat.AVIF: isobmff.wrap_exif,
    ImageFormat.JXL: jxl.wrap_exif,
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
