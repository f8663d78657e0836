"""PNG pixel data is proven decodable by inflating it, without holding the pixels."""

from __future__ import annotations

import io
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from chitram_core.errors import InvalidImage
from chitram_core.images.formats import check_png_pixels

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]


def encode(mode: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(MODES), w=st.integers(1, 70), h=st.integers(1, 70))
def test_every_valid_png_passes(mode: str, w: int, h: int) -> None:
    check_png_pixels(io.BytesIO(encode(mode, (w, h))))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(4, "big")
        + kind
        + payload
        + zlib.crc32(kind + payload).to_bytes(4, "big")
    )


def png(width: int, height: int, raw: bytes, interlace: int = 0) -> bytes:
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, interlace])
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def test_interlaced_png_row_layout_is_understood() -> None:
    # A 3x3 grey image in Adam7: passes 2 and 3 are empty; (pixels per row, rows) of the rest.
    rows = [(1, 1), (1, 1), (2, 1), (1, 2), (3, 1)]
    raw = b"".join((b"\x00" + b"\x80" * w) * n for w, n in rows)
    data = png(3, 3, raw, interlace=1)
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # Pillow agrees this is a whole image
    check_png_pixels(io.BytesIO(data))


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("short", b"\x00" + b"\x01" * 3),
        ("long", (b"\x00" + b"\x01" * 4) * 5),
        ("bad-filter", (b"\x07" + b"\x01" * 4) * 4),
    ],
)
def test_wrong_pixel_data_is_invalid(name: str, raw: bytes) -> None:
    with pytest.raises(InvalidImage):
        check_png_pixels(io.BytesIO(png(4, 4, raw)))


def test_corrupt_zlib_is_invalid() -> None:
    good = png(4, 4, (b"\x00" + b"\x01" * 4) * 4)
    idat = good.index(b"IDAT") + 4
    broken = good[:idat] + b"\xff\xff\xff" + good[idat + 3 :]
    with pytest.raises(InvalidImage):
        check_png_pixels(io.BytesIO(broken))
