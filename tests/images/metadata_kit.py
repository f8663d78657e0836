"""Builders and independent readers for the metadata allow-list tests.

The readers here walk the containers on their own (they share no code with
``chitram_core.images.metadata``) and classify each block into a kind, so a test can say
"these kinds went in, exactly these came out". ``exiftool_blocks`` asks Debian's exiftool,
a reader written by other people, for the same listing.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib

import pytest
from PIL import Image

from chitram_core.images.formats import ImageFormat
from chitram_core.testing.strategies import XMP_PACKET, make_image, srgb_profile

IN_CI = os.environ.get("CI", "").lower() == "true"
GPS = {1: "N", 2: (51.0, 30.0, 0.0)}


def exif_tiff(orientation: int | None) -> bytes:
    """A TIFF/EXIF block with GPS, a camera model and (optionally) an orientation."""
    exif = Image.Exif()
    exif[0x0110] = "ChitramCam"
    exif[0x8825] = GPS
    if orientation is not None:
        exif[0x0112] = orientation
    return exif.tobytes()[6:]


# --- JPEG ---------------------------------------------------------------------------------


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


JFIF = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
ADOBE = b"Adobe\x00\x64\x00\x00\x00\x00\x01"
C2PA = (
    struct.pack(">I", 40) + b"jumb" + struct.pack(">I", 32) + b"jumd" + b"c2pa" + bytes(12)
) + b"c2pa.claim"

JPEG_SEGMENTS: dict[str, tuple[bytes, str | None]] = {
    # name: (the segment, the kind it must come out as, or None when it must go)
    "jfif": (jpeg_segment(0xE0, JFIF), "jfif"),
    "jfif_thumbnail": (
        jpeg_segment(0xE0, JFIF[:12] + b"\x02\x01" + b"\xff\x00\x00" * 2),
        "jfif",
    ),
    "icc": (jpeg_segment(0xE2, b"ICC_PROFILE\x00\x01\x01" + srgb_profile()), "icc"),
    "adobe": (jpeg_segment(0xEE, ADOBE), "adobe"),
    "adobe_padded": (jpeg_segment(0xEE, ADOBE + b"secret sauce"), "adobe"),
    "exif": (jpeg_segment(0xE1, b"Exif\x00\x00" + exif_tiff(6)), "exif"),
    "jfxx_thumbnail": (jpeg_segment(0xE0, b"JFXX\x00\x13" + b"\x01\x01\x00" * 3), None),
    "xmp": (jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP_PACKET), None),
    "xmp_legacy": (jpeg_segment(0xE1, b"XMP\x00" + XMP_PACKET), None),
    "xmp_extended": (
        jpeg_segment(0xE1, b"http://ns.adobe.com/xmp/extension/\x00" + bytes(40) + XMP_PACKET),
        None,
    ),
    "mpf": (jpeg_segment(0xE2, b"MPF\x00II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"), None),
    "app3": (jpeg_segment(0xE3, b"Meta\x00\x00secret"), None),
    "c2pa": (jpeg_segment(0xEB, b"JP\x00\x00\x00\x00\x00\x01" + C2PA), None),
    "ducky": (jpeg_segment(0xEC, b"Ducky\x00\x01\x00\x04\x00\x00\x00\x50\x00\x00"), None),
    "photoshop": (
        jpeg_segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x00"),
        None,
    ),
    "app15": (jpeg_segment(0xEF, b"private stuff"), None),
    "comment": (jpeg_segment(0xFE, b"shot at home"), None),
}


def base_jpeg(seed: int = 0) -> bytes:
    """A clean JPEG whose only application segment is Pillow's JFIF APP0."""
    buf = io.BytesIO()
    make_image("RGB", 24, 16, seed).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def jpeg_kinds(data: bytes) -> list[str]:
    """The kind of every segment before the first scan (SOS ends the walk)."""
    kinds: list[str] = []
    pos = 2
    while True:
        marker = data[pos + 1]
        if marker == 0xDA:
            return kinds
        (length,) = struct.unpack_from(">H", data, pos + 2)
        payload = data[pos + 4 : pos + 2 + length]
        kinds.append(_jpeg_kind(marker, payload))
        pos += 2 + length


def _jpeg_kind(marker: int, payload: bytes) -> str:
    if marker == 0xE0 and payload.startswith(b"JFIF\x00"):
        return "jfif"
    if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
        return "exif"
    if marker == 0xE2 and payload.startswith(b"ICC_PROFILE\x00"):
        return "icc"
    if marker == 0xEE and payload.startswith(b"Adobe"):
        return "adobe"
    if 0xC0 <= marker <= 0xDF:
        return "frame"
    return f"marker-{marker:02X}"


# --- PNG ----------------------------------------------------------------------------------


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


PNG_CHUNKS: dict[str, tuple[bytes, str | None]] = {
    "tRNS": (png_chunk(b"tRNS", struct.pack(">HHH", 1, 2, 3)), "tRNS"),
    "gAMA": (png_chunk(b"gAMA", struct.pack(">I", 45455)), "gAMA"),
    "cHRM": (png_chunk(b"cHRM", struct.pack(">8I", *[31270, 32900] * 4)), "cHRM"),
    "sRGB": (png_chunk(b"sRGB", b"\x00"), "sRGB"),
    "iCCP": (png_chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(srgb_profile())), "iCCP"),
    "cICP": (png_chunk(b"cICP", b"\x01\x0d\x00\x01"), "cICP"),
    "sBIT": (png_chunk(b"sBIT", b"\x08\x08\x08"), "sBIT"),
    "pHYs": (png_chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1)), "pHYs"),
    "bKGD": (png_chunk(b"bKGD", struct.pack(">HHH", 9, 9, 9)), "bKGD"),
    "eXIf": (png_chunk(b"eXIf", exif_tiff(3)), "eXIf"),
    "tEXt": (png_chunk(b"tEXt", b"Comment\x00shot at home"), None),
    "zTXt": (png_chunk(b"zTXt", b"Location\x00\x00" + zlib.compress(b"51.5N")), None),
    "iTXt": (png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP_PACKET), None),
    "tIME": (png_chunk(b"tIME", b"\x07\xe0\x01\x01\x00\x00\x00"), None),
    "caBX": (png_chunk(b"caBX", C2PA), None),
    "private": (png_chunk(b"prVt", b"private stuff"), None),
    "sPLT": (png_chunk(b"sPLT", b"pal\x00\x08" + bytes(6)), None),
    "oFFs": (png_chunk(b"oFFs", bytes(9)), None),
}


def base_png(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    make_image("RGB", 12, 10, seed).save(buf, "PNG")
    return buf.getvalue()


def png_kinds(data: bytes) -> list[str]:
    kinds, pos = [], 8
    while pos < len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        kinds.append(ctype.decode("latin-1"))
        pos += 12 + length
    return kinds


# --- WebP ---------------------------------------------------------------------------------


def webp_chunk(ctype: bytes, data: bytes) -> bytes:
    return ctype + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b"")


WEBP_CHUNKS: dict[str, tuple[bytes, str | None]] = {
    "EXIF": (webp_chunk(b"EXIF", exif_tiff(8)), "EXIF"),
    "XMP": (webp_chunk(b"XMP ", XMP_PACKET), None),
    "unknown": (webp_chunk(b"ABCD", b"private stuff"), None),
    "c2pa": (webp_chunk(b"C2PA", C2PA), None),
}


def base_webp(seed: int = 0) -> bytes:
    """An extended-format (VP8X) WebP with an ICC profile and alpha."""
    buf = io.BytesIO()
    make_image("RGBA", 10, 8, seed).save(buf, "WEBP", lossless=True, icc_profile=srgb_profile())
    return buf.getvalue()


def webp_top_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, payload size) of each top-level chunk."""
    out, pos = [], 12
    while pos + 8 <= len(data):
        ctype = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        out.append((ctype, pos + 8, size))
        pos += 8 + size + (size & 1)
    return out


def webp_kinds(data: bytes) -> list[str]:
    return [ctype.decode("latin-1").strip() for ctype, _, _ in webp_top_chunks(data)]


def webp_with_chunks(base: bytes, extra: bytes, *, exif: bool, xmp: bool) -> bytes:
    """``base`` with ``extra`` chunks appended, VP8X flags and the RIFF size set to match."""
    body = bytearray(base[8:] + extra)
    assert body[4:8] == b"VP8X"
    flags = body[12]
    flags |= 0x08 if exif else 0
    flags |= 0x04 if xmp else 0
    body[12] = flags
    return b"RIFF" + struct.pack("<I", len(body)) + bytes(body)


# --- GIF ----------------------------------------------------------------------------------


def gif_extension(label: int, *blocks: bytes) -> bytes:
    return b"!" + bytes((label,)) + b"".join(bytes((len(b),)) + b for b in blocks) + b"\x00"


GIF_EXTENSIONS: dict[str, tuple[bytes, str | None]] = {
    "graphic_control": (gif_extension(0xF9, b"\x00\x0a\x00\x00"), "graphic-control"),
    "graphic_control_smuggling": (
        gif_extension(0xF9, b"\x00\x0a\x00\x00", b"hidden payload"),
        "graphic-control",
    ),
    "loop": (gif_extension(0xFF, b"NETSCAPE2.0", b"\x01\x00\x00"), "loop"),
    "loop_smuggling": (gif_extension(0xFF, b"NETSCAPE2.0", b"\x01\x02\x00", b"hidden"), "loop"),
    "comment": (gif_extension(0xFE, b"shot at home"), None),
    "plain_text": (gif_extension(0x01, bytes(12), b"hello"), None),
    "xmp": (gif_extension(0xFF, b"XMP DataXMP", XMP_PACKET[:200]), None),
    "icc": (gif_extension(0xFF, b"ICCRGBG1012", srgb_profile()[:200]), None),
    "photoshop": (gif_extension(0xFF, b"MGK8BIM0000", b"8BIM\x04\x04"), None),
    "netscape_buffering": (gif_extension(0xFF, b"NETSCAPE2.0", b"\x02\x00\x10\x00\x00"), None),
    "unknown_label": (gif_extension(0x42, b"what is this"), None),
}


def base_gif(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    make_image("P", 9, 7, seed).save(buf, "GIF")
    return buf.getvalue()


def gif_kinds(data: bytes) -> list[str]:
    """The kind of every block after the screen descriptor, up to the trailer."""
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    kinds: list[str] = []
    while data[pos : pos + 1] != b";":
        if data[pos : pos + 1] == b",":
            desc = data[pos + 1 : pos + 10]
            pos += 10 + (3 << ((desc[8] & 7) + 1) if desc[8] & 0x80 else 0) + 1
            pos = _skip_gif_blocks(data, pos)
            kinds.append("image")
            continue
        label = data[pos + 1]
        first = data[pos + 3 : pos + 3 + data[pos + 2]]
        end = _skip_gif_blocks(data, pos + 2)
        if label == 0xF9:
            kinds.append("graphic-control")
        elif label == 0xFF and first == b"NETSCAPE2.0":
            kinds.append("loop")
        else:
            kinds.append(f"extension-{label:02X}")
        pos = end
    return kinds


def _skip_gif_blocks(data: bytes, pos: int) -> int:
    while data[pos]:
        pos += 1 + data[pos]
    return pos + 1


def gif_insert(base: bytes, extra: bytes) -> bytes:
    """``extra`` blocks placed just before the first image descriptor."""
    flags = base[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while base[pos : pos + 1] == b"!":
        pos = _skip_gif_blocks(base, pos + 2)
    return base[:pos] + extra + base[pos:]


# --- the independent reader ---------------------------------------------------------------

EXIFTOOL = shutil.which("exiftool")
_EXT = {ImageFormat.JPEG: "jpg", ImageFormat.PNG: "png", ImageFormat.WEBP: "webp"}
_EXT[ImageFormat.GIF] = "gif"


def require_exiftool() -> str:
    """The exiftool path; skip without it, except under CI=true, where that is a failure."""
    if EXIFTOOL is None:
        message = "exiftool is not installed (apt-get install libimage-exiftool-perl)"
        if IN_CI:
            pytest.fail(f"{message}; CI=true needs the independent reader")
        pytest.skip(message)
    return EXIFTOOL


def exiftool_report(data: bytes, fmt: ImageFormat) -> str:
    """exiftool's verbose structure listing (-v1) of ``data``."""
    tool = require_exiftool()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"image.{_EXT[fmt]}")
        with open(path, "wb") as handle:
            handle.write(data)
        return subprocess.run(
            [tool, "-v1", "-a", "-u", path], capture_output=True, text=True, check=True, timeout=60
        ).stdout


_BLOCK_LINE = {
    ImageFormat.JPEG: re.compile(r"^JPEG (\w+) \("),
    ImageFormat.PNG: re.compile(r"^PNG (\w{4}) \("),
    ImageFormat.WEBP: re.compile(r"^RIFF '(.{4})' chunk"),
    ImageFormat.GIF: re.compile(
        r"^(Application Extension: \S+|Graphic Control(?=:)|Text(?=:)|Image(?=:)|  Comment(?= =))"
    ),
}


def exiftool_blocks(data: bytes, fmt: ImageFormat) -> list[str]:
    """The blocks exiftool sees, in file order: ``APP1``, ``caBX``, ``XMP``, ``Comment``, ..."""
    pattern = _BLOCK_LINE[fmt]
    blocks = []
    for line in exiftool_report(data, fmt).splitlines():
        match = pattern.match(line)
        if match:
            blocks.append(match.group(1).strip())
    return blocks
