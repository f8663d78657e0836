"""What the per-format scanners share: the push-parser operations, the scan state, EXIF.

Each format module (:mod:`.jpeg`, :mod:`.png`, :mod:`.webp`, :mod:`.gif`) has a ``parse``
generator that walks its container: it yields an operation (:class:`Read` so many bytes,
:class:`Skip` so many, :class:`ScanEntropy` to the next JPEG marker), is sent the bytes back, and
records what goes or changes on the :class:`ScanState` it was given. The driver that feeds the
upload to it chunk by chunk is :class:`chitram_core.images.metadata.MetadataScanner`.
"""

from __future__ import annotations

import struct
from collections.abc import Generator

import attrs

from chitram_core.errors import ImageTooLarge, InvalidImage

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
class FrameBudget:
    """How much animation an upload may hold, counted from its frame headers before any decode:
    at most ``max_frames`` frames, and at most ``max_pixels`` canvas pixels over all frames
    (width x height x frames: what decoding every frame costs)."""

    max_frames: int = 500
    max_pixels: int = 200_000_000


@attrs.frozen
class Edit:
    """Replace bytes ``[offset, offset + length)`` of the original with ``replacement``."""

    offset: int
    length: int
    replacement: bytes = b""

    @property
    def end(self) -> int:
        return self.offset + self.length


class Read:
    """Ask for exactly ``n`` bytes (fewer only at end of input)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class Skip:
    """Pass over ``remaining`` bytes without keeping them."""

    __slots__ = ("remaining",)

    def __init__(self, n: int) -> None:
        self.remaining = n


class ScanEntropy:
    """Pass over JPEG entropy-coded data up to the next real marker; its code is sent back."""

    __slots__ = ("pending_ff",)

    def __init__(self) -> None:
        self.pending_ff = False


Op = Read | Skip | ScanEntropy
Parser = Generator[Op, bytes, None]


@attrs.define
class ExifBlock:
    """The EXIF block being rewritten: where it is and which orientation it carries."""

    offset: int
    length: int
    orientation: int | None
    little_endian: bool
    original: bytes
    prefix: bytes = b""
    """What goes before the TIFF data in the rewritten block (JPEG XL: the offset field)."""


class ScanState:
    """The scan as a format parser sees it: where it is and what it decided so far."""

    def __init__(self, budget: FrameBudget | None = None) -> None:
        self.budget = budget
        """The animation limits; None counts frames without limiting them."""
        self.frames = 0
        """Frames seen so far (0 for a still image whose format has no frame headers)."""
        self.frame_pixels = 0
        """Pixels decoded over the frames seen so far."""
        self.offset = 0
        """Bytes consumed so far: the absolute offset of the next byte the parser is sent."""
        self.edits: list[Edit] = []
        self.exif: ExifBlock | None = None
        self.end: int | None = None
        """Where the image ends (its end marker); the bytes after it go."""
        self.webp_flags: tuple[int, int] | None = None  # (offset, original flag byte)
        self.webp_riff_end: int | None = None

    def frame(self, pixels: int, count: int = 1) -> None:
        """Count ``count`` frames of ``pixels`` each; past the budget, :class:`ImageTooLarge`."""
        self.frames += count
        self.frame_pixels += pixels * count
        budget = self.budget
        if budget is None:
            return
        if self.frames > budget.max_frames:
            raise ImageTooLarge(
                f"The animation has more than {budget.max_frames} frames",
                frames=self.frames,
                max_frames=budget.max_frames,
            )
        if self.frame_pixels > budget.max_pixels:
            raise ImageTooLarge(
                f"The animation's frames hold more than {budget.max_pixels} pixels in all "
                f"(width x height x frames)",
                frames=self.frames,
                max_animation_pixels=budget.max_pixels,
            )

    def remove(self, offset: int, end: int) -> None:
        """Plan the removal of bytes ``[offset, end)``; adjacent removals merge into one."""
        if end <= offset:
            return
        last = self.edits[-1] if self.edits else None
        if last is not None and not last.replacement and last.end == offset:
            self.edits[-1] = Edit(last.offset, last.length + end - offset)  # one run of junk
        else:
            self.add(Edit(offset, end - offset))

    def add(self, edit: Edit) -> None:
        """Plan ``edit``; more than :data:`MAX_EDITS` of them is refused."""
        if len(self.edits) >= MAX_EDITS:
            raise InvalidImage(
                f"Too many separate metadata blocks to remove (more than {MAX_EDITS})"
            )
        self.edits.append(edit)


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


def minimal_tiff(orientation: int, little_endian: bool) -> bytes:
    e = "<" if little_endian else ">"
    head = b"II*\x00" if little_endian else b"MM\x00*"
    return (
        head
        + struct.pack(e + "I", 8)
        + struct.pack(e + "H", 1)
        + struct.pack(e + "HHIHH", ORIENTATION_TAG, 3, 1, orientation, 0)
        + struct.pack(e + "I", 0)
    )


def need(data: bytes, n: int, fmt: str, what: str) -> bytes:
    if len(data) < n:
        raise InvalidImage(f"Truncated {fmt} file: it ends inside the {what}")
    return data
