"""GIF: keep the images, graphic control and loop count; drop comments and other extensions.

See :mod:`chitram_core.images.metadata` for the allow-list as a whole.
"""

from __future__ import annotations

import struct
from collections.abc import Generator

from chitram_core.errors import InvalidImage
from chitram_core.images.scan.base import Edit, Op, Parser, Read, ScanState, Skip, need

_GIF_NETSCAPE = b"NETSCAPE2.0"
_GIF_GRAPHIC_CONTROL = 0xF9
_GIF_APPLICATION = 0xFF


def _gif_sub_blocks(s: ScanState) -> Generator[Op, bytes, int]:
    """Skip data sub-blocks up to the terminator; how many there were."""
    count = 0
    while True:
        size = need((yield Read(1)), 1, "GIF", "data sub-blocks")[0]
        if size == 0:
            return count
        count += 1
        yield Skip(size)


def _gif_block(s: ScanState) -> Generator[Op, bytes, bytes | None]:
    """Read one data sub-block; None at the terminator."""
    size = need((yield Read(1)), 1, "GIF", "extension")[0]
    if size == 0:
        return None
    return need((yield Read(size)), size, "GIF", "extension")


def _gif_extension(s: ScanState) -> Generator[Op, bytes, tuple[bytes | None, bool]]:
    """Walk one extension (after ``!``): (what to store instead or None to drop, unchanged).

    Kept: the graphic control extension (its 4 bytes: delay, disposal, transparency) and the
    NETSCAPE2.0 loop count, both in their canonical form so that no sub-block rides along.
    Comments, plain text and every other application extension go.
    """
    label = need((yield Read(1)), 1, "GIF", "extension")[0]
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


def parse(s: ScanState) -> Parser:
    header = need((yield Read(13)), 13, "GIF", "logical screen descriptor")
    if header[:6] not in (b"GIF87a", b"GIF89a"):
        raise InvalidImage("Malformed GIF: bad signature")
    flags = header[10]
    canvas = int.from_bytes(header[6:8], "little") * int.from_bytes(header[8:10], "little")
    if flags & 0x80:
        yield Skip(3 << ((flags & 7) + 1))
    while True:
        start = s.offset
        intro = yield Read(1)
        if not intro:
            return  # no trailer: tolerated (Pillow and browsers accept it), nothing after it
        if intro == b";":
            s.end = s.offset
            return
        if intro == b"!":
            kept, unchanged = yield from _gif_extension(s)
            if kept is None:
                s.remove(start, s.offset)
            elif not unchanged:
                s.add(Edit(start, s.offset - start, kept))
        elif intro == b",":
            desc = need((yield Read(9)), 9, "GIF", "image descriptor")
            width, height = struct.unpack_from("<HH", desc, 4)
            s.frame(max(canvas, width * height))  # a frame past the screen grows the canvas
            if desc[8] & 0x80:
                yield Skip(3 << ((desc[8] & 7) + 1))
            need((yield Read(1)), 1, "GIF", "image data")
            yield from _gif_sub_blocks(s)
        else:
            raise InvalidImage(f"Malformed GIF: unknown block 0x{intro[0]:02X} at byte {start}")
