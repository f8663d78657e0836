"""HEIF and AVIF (ISO base media files): header probing and the metadata allow-list.

A HEIF/AVIF file is a sequence of boxes: ``ftyp``, ``meta`` (the item table: what each item
is, where its bytes are, its properties such as the ``ispe`` size) and ``mdat`` (the coded
data). Item locations (``iloc``) are absolute file offsets, so nothing can be removed without
rewriting them; metadata is blanked in place instead, which keeps every offset valid:

- the data of ``Exif`` items becomes an empty EXIF (no tags: the orientation of a HEIF is its
  ``irot``/``imir`` properties, which stay), and that of ``mime`` items (XMP) and ``uri ``
  items (C2PA and other linked metadata) becomes spaces;
- top-level boxes other than ``ftyp``, ``meta``, ``mdat`` and ``moov`` (``uuid`` vendor boxes,
  ``free``/``skip`` padding that can carry anything) become ``free`` boxes of zero bytes.

Coded image data, item properties (colour profiles included) and the box structure are kept.

An image sequence (an animated HEIF or AVIF) also has a ``moov`` box: a track per sequence,
each with its sample count (``stsz``) and frame size (``tkhd``, and the sample entry's coded
size). The walk reads it and counts the frames against the animation budget, as the frame
headers of a GIF, WebP or APNG are counted, before any decoder sees the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from chitram_core.errors import InvalidImage
from chitram_core.images.scan.base import (
    MAX_EXIF_BYTES,
    Edit,
    Parser,
    Read,
    ScanState,
    Skip,
    need,
)

MAX_BOXES = 10_000
"""More boxes than this in one container level, or items in the item table, is refused: the
header walk stays a bounded number of steps."""
MAX_META_BYTES = 4 * 1024 * 1024
"""A ``meta`` box larger than this is refused (real ones are a few kilobytes)."""
_KEEP_TOP = frozenset({b"ftyp", b"meta", b"mdat", b"moov"})
_SEQUENCE_HANDLERS = frozenset({b"pict", b"vide"})
"""Handler types of the tracks whose samples are frames (``auxv`` alpha tracks go with them)."""
_BLANK_ITEMS = {b"Exif": None, b"mime": b" ", b"uri ": b" "}
_EMPTY_EXIF = b"\x00\x00\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00"
"""An Exif item payload: the TIFF header offset (0), then a TIFF with one empty IFD."""


def boxes(data: bytes, start: int, end: int, where: str) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of each box in ``data[start:end]``."""
    pos = start
    for _ in range(MAX_BOXES):
        if pos >= end:
            return
        if pos + 8 > end:
            raise InvalidImage(f"Malformed {where}: a box header runs past its container")
        size, typ = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise InvalidImage(f"Malformed {where}: a box header runs past its container")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise InvalidImage(f"Malformed {where}: box {typ!r} runs past its container")
        yield typ, pos, pos + header, pos + size
        pos += size
    raise InvalidImage(f"Malformed {where}: more than {MAX_BOXES} boxes")


def _find(data: bytes, start: int, end: int, typ: bytes, where: str) -> tuple[int, int] | None:
    for t, _box, payload, box_end in boxes(data, start, end, where):
        if t == typ:
            return payload, box_end
    return None


def _meta(head: bytes, where: str) -> tuple[int, int]:
    """The payload range of the top-level ``meta`` box (after its version and flags)."""
    pos = 0
    n = len(head)
    for _ in range(MAX_BOXES):
        if pos + 8 > n:
            break
        size, typ = struct.unpack_from(">I4s", head, pos)
        header = 8
        if size == 1 and pos + 16 <= n:
            (size,) = struct.unpack_from(">Q", head, pos + 8)
            header = 16
        if size == 0 or size < header:
            break
        if typ == b"meta":
            if pos + size > n:
                raise InvalidImage(
                    f"Truncated {where} file: it ends inside the item table (meta box), or "
                    "the table is too large"
                )
            if size < header + 4:
                raise InvalidImage(f"Malformed {where}: meta box too short")
            return pos + header + 4, pos + size
        pos += size
    if pos + 8 > n:
        raise InvalidImage(f"Truncated {where} file: it ends before its item table (meta box)")
    raise InvalidImage(f"No {where} item table (meta box) within the header")


def _uint(data: bytes, pos: int, size: int) -> int:
    if size == 0:
        return 0
    if pos + size > len(data):
        raise InvalidImage("Malformed item table: a field runs past its box")
    return int.from_bytes(data[pos : pos + size], "big")


def probe(head: bytes, where: str = "HEIF", *, turn: bool = True) -> tuple[int, int, int, int]:
    """The primary image's size as the decoder gives it (its ``ispe`` property, cropped by
    ``clap``, and with ``turn`` turned by ``irot``: libheif applies the rotation, Pillow's AVIF
    plugin reports it as an EXIF orientation instead) and its coded size (``ispe``: what the
    decoder allocates).

    Any item (a tile, an alpha plane, a thumbnail) claiming more pixels than the primary image
    is refused: the limits are checked on the primary's size, so nothing may be larger.
    """
    start, end = _meta(head, where)
    pitm = _find(head, start, end, b"pitm", where)
    iprp = _find(head, start, end, b"iprp", where)
    if pitm is None or iprp is None:
        raise InvalidImage(f"Malformed {where}: no primary item or no item properties")
    version = _uint(head, pitm[0], 1)
    primary = _uint(head, pitm[0] + 4, 4 if version else 2)
    ipco = _find(head, iprp[0], iprp[1], b"ipco", where)
    if ipco is None:
        raise InvalidImage(f"Malformed {where}: no item property container")
    props = [(t, payload, box_end) for t, _b, payload, box_end in boxes(head, *ipco, where)]
    sizes = []
    for t, payload, _end in props:
        if t == b"ispe":
            sizes.append(
                struct.unpack_from(">II", need(head[payload + 4 : payload + 12], 8, where, "ispe"))
            )
    largest = max((w * h for w, h in sizes), default=0)
    width = height = 0
    crop: tuple[int, int] | None = None
    rotate = False
    for t, _box, payload, box_end in boxes(head, iprp[0], iprp[1], where):
        if t != b"ipma":
            continue
        for item, index in _ipma(head, payload, box_end):
            if item != primary or not 1 <= index <= len(props):
                continue
            ptype, ppayload, pend = props[index - 1]
            if ptype == b"ispe":
                width, height = struct.unpack_from(">II", head, ppayload + 4)
            elif ptype == b"irot" and ppayload < len(head):
                rotate = bool(head[ppayload] & 1)
            elif ptype == b"clap":
                wn, wd, hn, hd = struct.unpack_from(
                    ">IIII", need(head[ppayload:pend], 16, where, "clap")
                )
                if not wd or not hd:
                    raise InvalidImage(f"Malformed {where}: a clean aperture divides by zero")
                crop = ((wn + wd // 2) // wd, (hn + hd // 2) // hd)
    if width * height == 0:
        raise InvalidImage(f"Malformed {where}: the primary image has no size (ispe) property")
    if largest > width * height:
        raise InvalidImage(f"Malformed {where}: an item is larger than the primary image")
    shown = (min(crop[0], width), min(crop[1], height)) if crop else (width, height)
    if rotate and turn:
        return shown[1], shown[0], height, width
    return shown[0], shown[1], width, height


def _ipma(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int]]:
    version, flags = data[pos], _uint(data, pos + 1, 3)
    count = _uint(data, pos + 4, 4)
    if count > MAX_BOXES:
        raise InvalidImage(f"Malformed item table: more than {MAX_BOXES} property associations")
    pos += 8
    for _ in range(count):
        item = _uint(data, pos, 4 if version else 2)
        pos += 4 if version else 2
        n = _uint(data, pos, 1)
        pos += 1
        for _ in range(n):
            if flags & 1:
                yield item, _uint(data, pos, 2) & 0x7FFF
                pos += 2
            else:
                yield item, _uint(data, pos, 1) & 0x7F
                pos += 1
        if pos > end:
            raise InvalidImage("Malformed item table: ipma runs past its box")


def _item_types(meta: bytes, start: int, end: int) -> dict[int, bytes]:
    """Item ID to item type, from ``iinf`` (``infe`` version 2 and 3 entries)."""
    iinf = _find(meta, start, end, b"iinf", "item table")
    if iinf is None:
        return {}
    version = meta[iinf[0]]
    first = iinf[0] + 4 + (4 if version else 2)
    types: dict[int, bytes] = {}
    for t, _box, payload, _end in boxes(meta, first, iinf[1], "item table"):
        if t != b"infe" or meta[payload] < 2:
            continue
        wide = meta[payload] >= 3
        item = _uint(meta, payload + 4, 4 if wide else 2)
        at = payload + 4 + (4 if wide else 2) + 2
        types[item] = meta[at : at + 4]
    return types


def _locations(meta: bytes, start: int, end: int, base: int) -> Iterator[tuple[int, int, int]]:
    """(item ID, absolute offset, length) of each extent, from ``iloc``; ``base`` is the file
    offset of ``meta[0]`` (for items stored in the ``idat`` box)."""
    iloc = _find(meta, start, end, b"iloc", "item table")
    if iloc is None:
        return
    idat = _find(meta, start, end, b"idat", "item table")
    pos = iloc[0]
    version = meta[pos]
    sizes = _uint(meta, pos + 4, 2)
    off_size, len_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    pos += 6
    count = _uint(meta, pos, 4 if version == 2 else 2)
    pos += 4 if version == 2 else 2
    if count > MAX_BOXES:
        raise InvalidImage(f"Malformed item table: more than {MAX_BOXES} item locations")
    for _ in range(count):
        item = _uint(meta, pos, 4 if version == 2 else 2)
        pos += 4 if version == 2 else 2
        method = 0
        if version in (1, 2):
            method = _uint(meta, pos, 2) & 15
            pos += 2
        pos += 2  # data reference index
        item_base = _uint(meta, pos, base_size)
        pos += base_size
        extents = _uint(meta, pos, 2)
        pos += 2
        for _ in range(extents):
            pos += index_size
            offset = _uint(meta, pos, off_size)
            length = _uint(meta, pos + off_size, len_size)
            pos += off_size + len_size
            if method == 0:
                yield item, item_base + offset, length
            elif method == 1 and idat is not None:
                yield item, base + idat[0] + item_base + offset, length
        if pos > iloc[1]:
            raise InvalidImage("Malformed item table: iloc runs past its box")


def _blank_items(meta: bytes, base: int) -> list[Edit]:
    """The blanking edits of the metadata items, by offset (not yet compared with the data)."""
    types = _item_types(meta, 4, len(meta))
    blanked = {item: t for item, t in types.items() if t in _BLANK_ITEMS}
    written: dict[int, int] = {}
    planned: list[Edit] = []
    for item, offset, length in _locations(meta, 4, len(meta), base):
        kind = blanked.get(item)
        if kind is None or length == 0:
            continue
        fill = _BLANK_ITEMS[kind]
        if fill is None:  # Exif: an empty EXIF across the item's extents, then zeros
            done = written.get(item, 0)
            piece = _EMPTY_EXIF[done : done + length]
            replacement = piece + b"\x00" * (length - len(piece))
            written[item] = done + length
        else:
            replacement = fill * length
        planned.append(Edit(offset, length, replacement))
    planned.sort(key=lambda e: e.offset)
    return planned


def _box(data: bytes, start: int, end: int, path: tuple[bytes, ...]) -> tuple[int, int] | None:
    """The payload range of the box at ``path`` (first match at each level) inside a range."""
    span: tuple[int, int] | None = (start, end)
    for typ in path:
        if span is None:
            return None
        span = _find(data, span[0], span[1], typ, "image sequence")
    return span


def count_frames(s: ScanState, moov: bytes) -> None:
    """Count the frames of each image-sequence track in ``moov`` (its payload) on ``s``: the
    samples in ``stsz`` (or ``stz2``), each the larger of the track's size (``tkhd``) and its
    sample entry's coded size. Past the budget, :class:`ImageTooLarge` from ``s.frame``."""
    for typ, _box_start, payload, end in boxes(moov, 0, len(moov), "image sequence"):
        if typ != b"trak":
            continue
        hdlr = _box(moov, payload, end, (b"mdia", b"hdlr"))
        if hdlr is None or moov[hdlr[0] + 8 : hdlr[0] + 12] not in _SEQUENCE_HANDLERS:
            continue
        stbl = _box(moov, payload, end, (b"mdia", b"minf", b"stbl"))
        sizes = None
        if stbl is not None:
            sizes = _find(moov, *stbl, b"stsz", "image sequence") or _find(
                moov, *stbl, b"stz2", "image sequence"
            )
        if stbl is None or sizes is None:
            raise InvalidImage("Malformed image sequence: a track has no sample table")
        count = _uint(moov, sizes[0] + 8, 4)
        pixels = 0
        tkhd = _find(moov, payload, end, b"tkhd", "image sequence")
        if tkhd is not None:
            at = tkhd[0] + (88 if moov[tkhd[0]] == 1 else 76)
            pixels = (_uint(moov, at, 4) >> 16) * (_uint(moov, at + 4, 4) >> 16)
        stsd = _find(moov, *stbl, b"stsd", "image sequence")
        if stsd is not None:
            for _t, _b, entry, entry_end in boxes(moov, stsd[0] + 8, stsd[1], "image sequence"):
                if entry + 28 <= entry_end:
                    pixels = max(pixels, _uint(moov, entry + 24, 2) * _uint(moov, entry + 26, 2))
                break
        s.frame(pixels, count)


def _checked(s: ScanState, end: int, pending: list[Edit]) -> Parser:
    """Pass over the bytes up to ``end``, planning each pending blanking edit that falls there
    only when the data is not blank already (so stripping twice changes nothing more)."""
    while pending and pending[0].offset < end:
        edit = pending.pop(0)
        if edit.offset < s.offset or edit.length > MAX_EXIF_BYTES:
            s.add(edit)  # behind us (an item before the item table), or too large to compare
            continue
        yield Skip(edit.offset - s.offset)
        if (yield Read(edit.length)) != edit.replacement:
            s.add(edit)
    if s.offset > end:
        raise InvalidImage("Malformed HEIF: a metadata item runs past the end of its box")
    yield Skip(end - s.offset)


def parse(s: ScanState) -> Parser:
    """Walk the top-level boxes; blank metadata items and boxes not on the allow-list."""
    pending: list[Edit] = []
    for _ in range(MAX_BOXES):
        start = s.offset
        header = yield Read(8)
        if not header:
            for edit in pending:  # past the end: applying it refuses the file
                s.add(edit)
            return
        header = need(header, 8, "HEIF", "box header")
        size, typ = struct.unpack_from(">I4s", header)
        length = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", need((yield Read(8)), 8, "HEIF", "box header"))
            length = 16
        if size == 0:  # the last box, to the end of the file
            if typ not in _KEEP_TOP or typ == b"moov":
                raise InvalidImage(f"Malformed HEIF: an open-ended {typ!r} box")
            for edit in pending:
                s.add(edit)
            while len((yield Read(64 * 1024))) == 64 * 1024:
                pass
            return
        if size < length:
            raise InvalidImage(f"Malformed HEIF: box {typ!r} is shorter than its header")
        payload = size - length
        if typ == b"meta":
            if payload > MAX_META_BYTES:
                raise InvalidImage(f"The HEIF item table is over {MAX_META_BYTES} bytes")
            meta = need((yield Read(payload)), payload, "HEIF", "meta box")
            for edit in _blank_items(meta, start + length):
                inside = edit.offset - start - length
                if inside >= 0 and meta[inside : inside + edit.length] == edit.replacement:
                    continue  # an item in the meta box's idat, blank already
                pending.append(edit)
            pending.sort(key=lambda e: e.offset)
        elif typ == b"moov":
            if payload > MAX_META_BYTES:
                raise InvalidImage(
                    f"The image sequence's track table is over {MAX_META_BYTES} bytes"
                )
            moov = need((yield Read(payload)), payload, "HEIF", "moov box")
            count_frames(s, moov)
            while pending and pending[0].offset < start + size:  # an item inside it: odd, but
                edit = pending.pop(0)  # planned as anywhere else
                inside = edit.offset - start - length
                if inside < 0 or moov[inside : inside + edit.length] != edit.replacement:
                    s.add(edit)
        else:
            yield from _checked(s, start + size, pending)
            if typ not in _KEEP_TOP:
                if typ != b"free":
                    s.add(Edit(start + 4, 4, b"free"))
                if payload:
                    s.add(Edit(start + length, payload, bytes(payload)))
    raise InvalidImage(f"Malformed HEIF: more than {MAX_BOXES} top-level boxes")


def wrap_exif(tiff: bytes) -> bytes:
    """HEIF orientation lives in ``irot``/``imir``, never in EXIF: nothing is written."""
    return b""
