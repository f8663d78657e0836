"""Format detection, header probing, pixel limits and safe verification.

The upload path runs these in order: :func:`sniff` on the first bytes, :func:`probe` on the first
:data:`HEAD_BYTES`, :func:`check_limits` on the probed size, and only then :func:`verify`, which
is the first step that lets Pillow near the bytes. Everything before ``verify`` is pure byte
parsing, so a hostile header is refused before any decoder allocates memory for it.

Every function here raises only :class:`~chitram_core.errors.ChitramError` subclasses, whatever
the input: a 500 must not be reachable through a crafted file.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import BinaryIO

import attrs
from PIL import Image, UnidentifiedImageError

from chitram_core.errors import ChitramError, ImageTooLarge, InvalidImage
from chitram_core.images.codecs import require
from chitram_core.images.kinds import EARLY_SNIFF_BYTES as EARLY_SNIFF_BYTES
from chitram_core.images.kinds import PNG_SIGNATURE as PNG_SIGNATURE  # re-exported
from chitram_core.images.kinds import SNIFF_BYTES as SNIFF_BYTES
from chitram_core.images.kinds import ImageFormat as ImageFormat
from chitram_core.images.kinds import sniff as sniff
from chitram_core.images.metadata import MetadataScanner
from chitram_core.images.scan import isobmff, jxl

WHOLE_FILE_FORMATS = frozenset(
    {ImageFormat.WEBP, ImageFormat.HEIF, ImageFormat.AVIF, ImageFormat.JXL}
)
"""Formats whose decoder is handed the whole file and decodes the whole image at once: their
pixel limit is the lower ``max_pixels_unstreamed``."""

HEAD_BYTES = 1024 * 1024
"""How much of the start of a file :func:`probe` is given: enough for any sane header."""

JPEG_DRAFT_SCALE = 8
"""Verification decodes JPEG at 1/8 scale: every block is still entropy-decoded."""


@attrs.frozen
class ImageInfo:
    """What the header says: enough to enforce limits before decoding."""

    format: ImageFormat
    width: int
    height: int
    coded: tuple[int, int] | None = None
    """The size the decoder allocates when it differs from the displayed one (a HEIF coded
    in 64-pixel blocks and cropped by its clean aperture)."""

    @property
    def pixels(self) -> int:
        """The pixels a decode allocates: what every limit and cost is computed from."""
        if self.coded is not None:
            return max(self.width * self.height, self.coded[0] * self.coded[1])
        return self.width * self.height

    @property
    def longest_side(self) -> int:
        if self.coded is not None:
            return max(self.width, self.height, self.coded[0], self.coded[1])
        return max(self.width, self.height)


def probe(head: bytes) -> ImageInfo:
    """Read the dimensions from the header without decoding the image.

    ``head`` is the first (up to) :data:`HEAD_BYTES` of the file. A header that is cut short,
    malformed or claims a zero side raises :class:`InvalidImage`.
    """
    fmt = sniff(head)
    require(fmt)
    try:
        width, height, *coded = _PROBES[fmt](head)
    except ChitramError:
        raise
    except (IndexError, struct.error, ValueError) as exc:  # belt and braces: parsers check
        raise InvalidImage(f"Malformed {fmt.name} header", reason=str(exc)) from None
    if width <= 0 or height <= 0:
        raise InvalidImage(
            f"The {fmt.name} header declares a zero-sized image ({width}x{height})",
            width=width,
            height=height,
        )
    if coded and (coded[0] <= 0 or coded[1] <= 0):
        raise InvalidImage(f"The {fmt.name} header declares a zero-sized coded image")
    return ImageInfo(fmt, width, height, (coded[0], coded[1]) if coded else None)


def _truncated(fmt: str, what: str) -> InvalidImage:
    return InvalidImage(f"Truncated {fmt} file: it ends inside the {what}")


# JPEG markers that carry no length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic variants).
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)


MAX_HEADER_SEGMENTS = 1000
"""A JPEG with more segments than this before its frame header is refused: the header walk
runs on the server's event loop, so it stays a bounded handful of steps (real files have a few
dozen)."""


def _probe_jpeg(head: bytes) -> tuple[int, int]:
    width, height, _ = _jpeg_frame(head)
    return width, height


def jpeg_progressive(head: bytes) -> bool:
    """Whether a JPEG's frame header (in ``head``) is a progressive one: its decode keeps every
    DCT coefficient, so it costs more memory. The verification job refuses a file whose later
    frame headers disagree with the first."""
    return _jpeg_frame(head)[2] in _JPEG_PROGRESSIVE_SOF


def _jpeg_frame(head: bytes) -> tuple[int, int, int]:
    pos = 2
    n = len(head)
    for _ in range(MAX_HEADER_SEGMENTS):
        if pos >= n:
            raise _jpeg_end(head)
        if head[pos] != 0xFF:
            raise InvalidImage(f"Malformed JPEG: expected a marker at byte {pos}")
        while pos < n and head[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise _jpeg_end(head)
        marker = head[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA, 0x00):
            raise InvalidImage("Malformed JPEG: no frame header before the image data")
        if pos + 2 > n:
            raise _jpeg_end(head)
        (length,) = struct.unpack_from(">H", head, pos)
        if length < 2:
            raise InvalidImage(f"Malformed JPEG: segment length {length} at byte {pos}")
        if marker in _JPEG_SOF:
            if length < 8:
                raise InvalidImage("Malformed JPEG: frame header too short")
            if pos + 7 > n:
                raise _jpeg_end(head)
            height, width = struct.unpack_from(">HH", head, pos + 3)
            return width, height, marker
        pos += length
    raise InvalidImage(f"Malformed JPEG: more than {MAX_HEADER_SEGMENTS} segments before the frame")


def _jpeg_end(head: bytes) -> InvalidImage:
    if len(head) >= HEAD_BYTES:
        return InvalidImage(f"No JPEG frame header within the first {HEAD_BYTES} bytes")
    return _truncated("JPEG", "header (no frame header found)")


def _probe_png(head: bytes) -> tuple[int, int]:
    if len(head) < 33:
        raise _truncated("PNG", "IHDR chunk")
    length, ctype = struct.unpack_from(">I4s", head, 8)
    if ctype != b"IHDR" or length != 13:
        raise InvalidImage("Malformed PNG: the first chunk must be a 13-byte IHDR")
    (crc,) = struct.unpack_from(">I", head, 29)
    if zlib.crc32(head[12:29]) != crc:
        raise InvalidImage("Malformed PNG: IHDR checksum mismatch")
    width, height, depth, color = struct.unpack_from(">IIBB", head, 16)
    if width > 0x7FFFFFFF or height > 0x7FFFFFFF:
        raise InvalidImage("Malformed PNG: dimension out of range")
    if depth not in _PNG_DEPTHS.get(color, ()):
        raise InvalidImage(f"Malformed PNG: bit depth {depth} with colour type {color}")
    return width, height


_PNG_DEPTHS: dict[int, tuple[int, ...]] = {
    0: (1, 2, 4, 8, 16),
    2: (8, 16),
    3: (1, 2, 4, 8),
    4: (8, 16),
    6: (8, 16),
}


def _probe_gif(head: bytes) -> tuple[int, int]:
    if len(head) < 10:
        raise _truncated("GIF", "logical screen descriptor")
    width, height = struct.unpack_from("<HH", head, 6)
    return width, height


def _probe_webp(head: bytes) -> tuple[int, int]:
    if len(head) < 20:
        raise _truncated("WebP", "first chunk header")
    ctype = head[12:16]
    (size,) = struct.unpack_from("<I", head, 16)
    body = head[20 : 20 + size]
    if ctype == b"VP8 ":
        if len(body) < 10:
            raise _truncated("WebP", "VP8 frame header")
        if body[0] & 1:
            raise InvalidImage("Malformed WebP: the VP8 frame is not a key frame")
        if body[3:6] != b"\x9d\x01\x2a":
            raise InvalidImage("Malformed WebP: bad VP8 start code")
        w, h = struct.unpack_from("<HH", body, 6)
        return w & 0x3FFF, h & 0x3FFF
    if ctype == b"VP8L":
        if len(body) < 5:
            raise _truncated("WebP", "VP8L header")
        if body[0] != 0x2F:
            raise InvalidImage("Malformed WebP: bad VP8L signature")
        (bits,) = struct.unpack_from("<I", body, 1)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if ctype == b"VP8X":
        if len(body) < 10:
            raise _truncated("WebP", "VP8X header")
        w = int.from_bytes(body[4:7], "little") + 1
        h = int.from_bytes(body[7:10], "little") + 1
        return w, h
    raise InvalidImage(f"Malformed WebP: unknown first chunk {ctype!r}")


_PROBES: dict[ImageFormat, Callable[[bytes], tuple[int, ...]]] = {
    ImageFormat.JPEG: _probe_jpeg,
    ImageFormat.PNG: _probe_png,
    ImageFormat.GIF: _probe_gif,
    ImageFormat.WEBP: _probe_webp,
    ImageFormat.HEIF: isobmff.probe,
    ImageFormat.AVIF: lambda head: isobmff.probe(head, "AVIF", turn=False),
    ImageFormat.JXL: jxl.probe,
}


def check_limits(info: ImageInfo, *, max_pixels: int, max_dimension: int) -> None:
    """Refuse images whose header claims too many pixels, before anything decodes them."""
    if info.pixels > max_pixels or info.longest_side > max_dimension:
        raise ImageTooLarge(
            f"The image is {info.width}x{info.height} pixels; the limit is {max_pixels} pixels "
            f"and {max_dimension} pixels a side",
            width=info.width,
            height=info.height,
            max_pixels=max_pixels,
            max_dimension=max_dimension,
        )


# Everything Pillow is known to raise on bad input. MemoryError is included: a decode that
# cannot get its buffer is a property of the file, not of the server.
PILLOW_ERRORS: tuple[type[BaseException], ...] = (
    Image.DecompressionBombError,
    OSError,
    SyntaxError,
    ValueError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    MemoryError,
    AssertionError,
    RuntimeError,
)


def verify(
    fileobj: BinaryIO,
    info: ImageInfo,
    *,
    max_pixels: int,
    structure_checked: bool = False,
    decoded: Callable[[Image.Image], None] | None = None,
    shrink: Callable[[Image.Image], None] | None = None,
) -> None:
    """Prove that the bytes really decode as ``info.format``; SYNC (the upload runs it in the
    image engine's worker processes, see ``chitram_core.engine.work.verify_image``).

    Pillow opens the file with only that format's plugin, the size must equal the probed size,
    ``Image.verify()`` checks the structure (and PNG checksums) and then a real decode runs:
    JPEG in draft mode at 1/8 scale (every block is still decoded, in 1/64 of the memory),
    other formats their first frame, which ``max_pixels`` bounds.

    Before Pillow, :func:`check_structure` walks the container to its end marker, so a file
    cut short is refused even where Pillow would tolerate it (a PNG without its IEND checksum,
    a GIF frame without its block terminator).

    Memory: JPEG, PNG and GIF are read incrementally. Pillow's WebP plugin hands the whole file
    to libwebp, so a WebP costs its file size (bounded by the upload size limit) on top.

    ``decoded``, when given, is called with the decoded image (a JPEG's 1/8 draft, a first
    frame; not for PNG, whose pixels are only inflated) before it is closed, so the same job can
    use the pixels instead of decoding the bytes again (the upload's placeholders). It must
    catch its own errors: what it raises is reported as the file failing to decode.

    ``shrink``, when given, sets a JPEG's decode scale instead of the 1/8 draft (the upload
    job asks for its thumbnail's scale, then makes the thumbnail in ``decoded``): libjpeg
    entropy-decodes every block whatever the scale, so the proof is the same.
    """
    name = info.format.name
    try:
        fileobj.seek(0)
        if not structure_checked:  # the upload's scanner already walked it while streaming
            check_structure(fileobj, info.format)
        fileobj.seek(0)
        with _open(fileobj, info, max_pixels) as img:
            img.verify()
        fileobj.seek(0)
        if info.format is ImageFormat.PNG:
            # Inflate the pixel data and discard it: proves it decodes, in O(1) memory.
            check_png_pixels(fileobj)
            return
        with _open(fileobj, info, max_pixels) as img:
            if info.format is ImageFormat.JPEG and shrink is not None:
                shrink(img)
            elif info.format is ImageFormat.JPEG:
                img.draft(
                    None,
                    (
                        max(1, info.width // JPEG_DRAFT_SCALE),
                        max(1, info.height // JPEG_DRAFT_SCALE),
                    ),
                )
            img.load()
            if decoded is not None:
                decoded(img)
    except ChitramError:
        raise
    except PILLOW_ERRORS as exc:
        raise InvalidImage(
            f"The file is not a valid {name} image: {_reason(exc)}", reason=_reason(exc)
        ) from None


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def _png_rows(
    width: int, height: int, bits_per_pixel: int, interlaced: bool
) -> list[tuple[int, int]]:
    """(bytes per row without the filter byte, number of rows) for each pass."""

    def row_bytes(w: int) -> int:
        return (w * bits_per_pixel + 7) // 8

    if not interlaced:
        return [(row_bytes(width), height)]
    passes = []
    for x0, y0, dx, dy in _ADAM7:
        w = (width - x0 + dx - 1) // dx if width > x0 else 0
        h = (height - y0 + dy - 1) // dy if height > y0 else 0
        if w and h:
            passes.append((row_bytes(w), h))
    return passes


def check_png_pixels(fileobj: BinaryIO, chunk_size: int = 64 * 1024) -> None:
    """Inflate a PNG's IDAT stream without keeping it: right length, valid row filters.

    This is what decoding proves, minus the memory: a 40-megapixel PNG is checked with a
    few hundred kilobytes instead of the 160 MB its pixels would take.
    """
    fileobj.seek(8)
    header = fileobj.read(8 + 13)
    if len(header) < 21 or header[4:8] != b"IHDR":
        raise InvalidImage("The PNG has no IHDR chunk")
    width, height, depth, color, _comp, _filt, interlace = struct.unpack(">IIBBBBB", header[8:21])
    channels = _PNG_CHANNELS.get(color)
    if channels is None or depth not in (1, 2, 4, 8, 16):
        raise InvalidImage(f"The PNG has an invalid colour type {color} or depth {depth}")
    rows = _png_rows(width, height, channels * depth, interlace == 1)
    segments = iter(rows)
    row_len, rows_left = next(segments, (0, 0))
    expected = sum((r + 1) * n for r, n in rows)
    produced = 0
    position = 0  # offset inside the current row, 0 = the filter byte
    inflater = zlib.decompressobj()
    fileobj.seek(8 + 12 + 13)

    def consume(data: bytes) -> None:
        nonlocal produced, position, row_len, rows_left
        produced += len(data)
        if produced > expected:
            raise InvalidImage("The PNG's pixel data is longer than its size says")
        i = 0
        while i < len(data):
            if position == 0:
                if data[i] > 4:
                    raise InvalidImage(f"The PNG has an invalid row filter {data[i]}")
                i += 1
                position = 1
                continue
            step = min(len(data) - i, row_len + 1 - position)
            i += step
            position += step
            if position == row_len + 1:
                position = 0
                rows_left -= 1
                if rows_left == 0:
                    row_len, rows_left = next(segments, (0, 0))

    try:
        while True:
            head = fileobj.read(8)
            if len(head) < 8:
                raise InvalidImage("The PNG ends before its IEND chunk")
            length, ctype = struct.unpack(">I4s", head)
            if ctype == b"IEND":
                break
            if ctype != b"IDAT":
                fileobj.seek(length + 4, 1)
                continue
            left = length
            while left:
                block = fileobj.read(min(chunk_size, left))
                if not block:
                    raise InvalidImage("The PNG ends inside its pixel data")
                left -= len(block)
                data = inflater.decompress(block, chunk_size)
                consume(data)
                while inflater.unconsumed_tail:
                    consume(inflater.decompress(inflater.unconsumed_tail, chunk_size))
            fileobj.seek(4, 1)
        consume(inflater.flush())
    except zlib.error as exc:
        raise InvalidImage(f"The PNG's pixel data does not decompress: {exc}") from None
    if produced != expected or not inflater.eof:
        raise InvalidImage("The PNG's pixel data is shorter than its size says")


def check_structure(fileobj: BinaryIO, fmt: ImageFormat, chunk_size: int = 64 * 1024) -> None:
    """Walk the container structure of ``fileobj`` to its end; raise InvalidImage if broken.

    This is the metadata scanner run for its validation alone: it reads in chunks and keeps
    O(header) memory.
    """
    scanner = MetadataScanner(fmt)
    while chunk := fileobj.read(chunk_size):
        scanner.feed(chunk)
    scanner.finish()


def _open(fileobj: BinaryIO, info: ImageInfo, max_pixels: int) -> Image.Image:
    # Pillow's global bomb limit stays as a second line; ours is checked per call below
    # (warnings filters are process-global, so they are not touched from worker threads).
    img = Image.open(fileobj, formats=[info.format.pillow_name])
    if img.size != (info.width, info.height) and not _transformed(info, img.size):
        size = img.size
        img.close()
        raise InvalidImage(
            f"The {info.format.name} decoder sees {size[0]}x{size[1]} pixels but the header "
            f"says {info.width}x{info.height}"
        )
    if img.width * img.height > max_pixels or info.pixels > max_pixels:
        img.close()
        raise InvalidImage(
            f"The image has {img.width * img.height} pixels, more than the limit of {max_pixels}"
        )
    return img


def _transformed(info: ImageInfo, size: tuple[int, int]) -> bool:
    """HEIF, AVIF and JPEG XL decoders apply the file's crop and rotation: the size they see
    may be the header's turned, or cropped inside it, never larger."""
    if info.format not in WHOLE_FILE_FORMATS:
        return False
    w, h = size
    return (w <= info.width and h <= info.height) or (w <= info.height and h <= info.width)


def _reason(exc: BaseException) -> str:
    """A short, safe description of a decoder failure (no paths, no stack)."""
    if isinstance(exc, Image.DecompressionBombError):
        return "too many pixels to decode safely"
    if isinstance(exc, UnidentifiedImageError):
        return "the decoder does not recognise the data"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# image-work engine -----------------------------------------------------------------------

_JPEG_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})


class JpegScans:
    """Count a JPEG's scans (SOS markers) while its bytes stream past, in O(1) memory.

    A progressive JPEG can repeat a full-size scan thousands of times, and every repeat costs
    a pass over the whole image when it is decoded (the Cure53 "scan bomb"); Pillow cannot
    limit that, so a file with more than ``max_scans`` scans is refused here, before any
    decoder sees it. Entropy-coded data is skipped with ``bytes.find``, so this is cheap.

    The walk is lenient: it only counts. Anything malformed stops the counting and is left
    for the structure check and the decoder to refuse.
    """

    __slots__ = ("_buf", "_entropy", "_skip", "done", "max_scans", "progressive", "scans")

    def __init__(self, max_scans: int) -> None:
        self.max_scans = max_scans
        self.scans = 0
        self.progressive = False
        self.done = False
        self._buf = b""
        self._skip = 2  # the SOI marker
        self._entropy = False

    def feed(self, chunk: bytes) -> None:
        if self.done:
            return
        data = self._buf + chunk if self._buf else chunk
        n = len(data)
        i = 0
        while True:
            if self._skip:
                step = min(self._skip, n - i)
                i += step
                self._skip -= step
                if self._skip:
                    break
            if self._entropy:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    i = n if j < 0 else j
                    break
                code = data[j + 1]
                if code == 0x00 or 0xD0 <= code <= 0xD7 or code == 0xFF:
                    i = j + (1 if code == 0xFF else 2)
                    continue
                self._entropy = False
                i = j
            # A marker: fill bytes, a code, then (for most) a 2-byte length.
            while i < n and data[i] == 0xFF and i + 1 < n and data[i + 1] == 0xFF:
                i += 1
            if n - i < 2:
                break
            if data[i] != 0xFF:
                self.done = True
                break
            code = data[i + 1]
            if code == 0xD9:  # end of image
                self.done = True
                break
            if code in _JPEG_STANDALONE:
                i += 2
                continue
            if n - i < 4:
                break
            length = (data[i + 2] << 8) | data[i + 3]
            if length < 2:
                self.done = True
                break
            if code in _JPEG_PROGRESSIVE_SOF:
                self.progressive = True
            elif code == 0xDA:
                self.scans += 1
                if self.scans > self.max_scans:
                    raise InvalidImage(
                        f"The JPEG has more than {self.max_scans} scans; files like this take "
                        "minutes of CPU to decode and are refused",
                        max_scans=self.max_scans,
                    )
                self._entropy = True
            i += 2
            self._skip = length
        self._buf = data[i:] if i < n else b""


def count_jpeg_scans(data: bytes, max_scans: int) -> JpegScans:
    """:class:`JpegScans` over a whole file in memory; raises InvalidImage past ``max_scans``."""
    counter = JpegScans(max_scans)
    counter.feed(data)
    return counter
