"""Specifications for sniffing, header probing, pixel limits and verification."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chitram_core.errors import ChitramError, ImageTooLarge, InvalidFileFormat, InvalidImage
from chitram_core.images.formats import (
    HEAD_BYTES,
    ImageFormat,
    ImageInfo,
    check_limits,
    probe,
    sniff,
    verify,
)
from chitram_core.testing.strategies import (
    SampleImage,
    encode,
    gif_with_size,
    hostile_images,
    jpeg_with_size,
    make_image,
    png_bomb,
    png_with_size,
    polyglot_png,
    truncated_images,
    valid_images,
    webp_with_size,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_PIXELS = 40_000_000
MAX_DIMENSION = 12_000


def sample(fmt: ImageFormat, mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> bytes:
    return encode(make_image(mode, *size, seed=3), fmt)


# --- sniff -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(ImageFormat))
def test_sniff_recognises_each_format_by_its_magic(fmt: ImageFormat) -> None:
    assert sniff(sample(fmt)[:16]) is fmt


def test_format_names_mime_and_extension() -> None:
    assert [f.mime for f in ImageFormat] == [
        *("image/jpeg", "image/png", "image/gif", "image/webp"),
        *("image/heic", "image/avif", "image/jxl"),
    ]
    assert [f.pillow_name for f in ImageFormat] == [
        *("JPEG", "PNG", "GIF", "WEBP"),
        *("HEIF", "AVIF", "JXL"),
    ]
    assert ImageFormat.JPEG.extension == "jpg"


@pytest.mark.parametrize(
    "head",
    [b"", b"\xff\xd8", b"<html>", b"BM\x00\x00", b"RIFF\x00\x00\x00\x00WAVE", b"GIF88a"],
)
def test_sniff_refuses_unknown_or_short_magic(head: bytes) -> None:
    with pytest.raises(InvalidFileFormat):
        sniff(head)


@FAST
@given(st.binary(max_size=64))
def test_sniff_raises_only_chitram_errors_on_any_bytes(data: bytes) -> None:
    with contextlib.suppress(ChitramError):
        sniff(data)


# --- probe -------------------------------------------------------------------------------


@FAST
@given(valid_images())
def test_probe_agrees_with_pillow_on_valid_images(image: SampleImage) -> None:
    info = probe(image.data)
    with Image.open(io.BytesIO(image.data)) as img:
        assert (info.width, info.height) == img.size
    assert info.format is image.format


@FAST
@given(st.one_of(st.binary(max_size=512), hostile_images(), truncated_images()))
def test_probe_raises_only_chitram_errors_on_any_bytes(data: bytes) -> None:
    try:
        info = probe(data)
    except ChitramError:
        return
    assert info.width > 0 and info.height > 0


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png_with_size(1, 100_000), (1, 100_000)),
        (jpeg_with_size(50_000, 50_000), (50_000, 50_000)),
        (gif_with_size(640, 480), (640, 480)),
        (webp_with_size(16_000, 9), (16_000, 9)),
    ],
)
def test_probe_reads_claimed_sizes_without_decoding(data: bytes, size: tuple[int, int]) -> None:
    info = probe(data)
    assert (info.width, info.height) == size


def test_probe_reads_each_webp_bitstream_kind() -> None:
    img = make_image("RGB", 33, 17, seed=1)
    lossy, lossless = io.BytesIO(), io.BytesIO()
    img.save(lossy, "WEBP", quality=80)
    img.save(lossless, "WEBP", lossless=True)
    rgba = io.BytesIO()
    make_image("RGBA", 33, 17).save(rgba, "WEBP", exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00")
    assert [lossy.getvalue()[12:16], lossless.getvalue()[12:16], rgba.getvalue()[12:16]] == [
        b"VP8 ",
        b"VP8L",
        b"VP8X",
    ]
    for data in (lossy, lossless, rgba):
        assert (probe(data.getvalue()).width, probe(data.getvalue()).height) == (33, 17)


def test_probe_walks_jpeg_segments_past_a_large_app_segment() -> None:
    data = sample(ImageFormat.JPEG)
    app = b"\xff\xeb" + struct.pack(">H", 60_002) + b"\x00" * 60_000
    info = probe(data[:2] + app + data[2:])
    assert (info.width, info.height) == (40, 30)


def test_probe_reports_a_jpeg_without_frame_header_in_the_head() -> None:
    app = b"\xff\xeb" + struct.pack(">H", 65_535) + b"\x00" * 65_533
    data = b"\xff\xd8" + app * 17
    with pytest.raises(InvalidImage, match="first"):
        probe(data[:HEAD_BYTES])


def test_probe_rejects_a_png_whose_ihdr_checksum_is_wrong() -> None:
    data = bytearray(sample(ImageFormat.PNG))
    data[29] ^= 0xFF
    with pytest.raises(InvalidImage, match="checksum"):
        probe(bytes(data))


@pytest.mark.parametrize(
    "data",
    [png_with_size(0, 10), jpeg_with_size(10, 0), gif_with_size(0, 0)],
)
def test_probe_rejects_zero_sized_images(data: bytes) -> None:
    with pytest.raises(InvalidImage, match="zero"):
        probe(data)


@pytest.mark.parametrize("fmt", list(ImageFormat))
def test_probe_rejects_a_cut_header(fmt: ImageFormat) -> None:
    data = sample(fmt)
    cut = {ImageFormat.JPEG: 30, ImageFormat.PNG: 20, ImageFormat.GIF: 8, ImageFormat.WEBP: 16}
    cut |= {ImageFormat.HEIF: 60, ImageFormat.AVIF: 60, ImageFormat.JXL: 2}
    with pytest.raises(InvalidImage, match="Truncated"):
        probe(data[: cut[fmt]])


# --- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data", [png_with_size(1, 100_000), jpeg_with_size(50_000, 50_000), png_bomb(20_000, 20_000, 1)]
)
def test_huge_claims_are_refused_before_any_decode(data: bytes) -> None:
    info = probe(data)
    with pytest.raises(ImageTooLarge) as caught:
        check_limits(info, max_pixels=MAX_PIXELS, max_dimension=MAX_DIMENSION)
    assert caught.value.details == {
        "width": info.width,
        "height": info.height,
        "max_pixels": MAX_PIXELS,
        "max_dimension": MAX_DIMENSION,
    }


def test_images_within_limits_pass() -> None:
    check_limits(
        ImageInfo(ImageFormat.PNG, 12_000, 3_000), max_pixels=MAX_PIXELS, max_dimension=12_000
    )


# --- verify ------------------------------------------------------------------------------


@FAST
@given(valid_images())
def test_verify_accepts_valid_images(image: SampleImage) -> None:
    verify(io.BytesIO(image.data), probe(image.data), max_pixels=MAX_PIXELS)


@FAST
@given(truncated_images())
def test_verify_rejects_truncated_images_with_invalid_image(data: bytes) -> None:
    try:
        info = probe(data)
    except ChitramError:
        return
    if info.format is ImageFormat.GIF and data.endswith(b"\x00"):
        # A GIF missing only its trailer byte is whole (browsers and Pillow accept it);
        # any other cut must fail.
        with contextlib.suppress(InvalidImage):
            verify(io.BytesIO(data), info, max_pixels=MAX_PIXELS)
        return
    with pytest.raises(InvalidImage):
        verify(io.BytesIO(data), info, max_pixels=MAX_PIXELS)


@FAST
@given(hostile_images())
def test_verify_raises_only_chitram_errors_on_hostile_bytes(data: bytes) -> None:
    try:
        info = probe(data)
        check_limits(info, max_pixels=MAX_PIXELS, max_dimension=MAX_DIMENSION)
        verify(io.BytesIO(data), info, max_pixels=MAX_PIXELS)
    except ChitramError:
        pass


def test_verify_rejects_a_png_html_polyglot() -> None:
    data = polyglot_png()
    with pytest.raises(InvalidImage):
        verify(io.BytesIO(data), probe(data), max_pixels=MAX_PIXELS)


def test_verify_rejects_a_size_that_disagrees_with_the_probe() -> None:
    data = sample(ImageFormat.PNG)
    with pytest.raises(InvalidImage, match="header says"):
        verify(io.BytesIO(data), ImageInfo(ImageFormat.PNG, 41, 30), max_pixels=MAX_PIXELS)


def test_verify_only_uses_the_probed_format() -> None:
    data = sample(ImageFormat.PNG)
    with pytest.raises(InvalidImage):
        verify(io.BytesIO(data), ImageInfo(ImageFormat.GIF, 40, 30), max_pixels=MAX_PIXELS)


def test_verify_rejects_a_corrupt_idat_checksum() -> None:
    data = bytearray(sample(ImageFormat.PNG))
    idat = data.index(b"IDAT")
    (length,) = struct.unpack_from(">I", data, idat - 4)
    data[idat + 4 + length] ^= 0xFF
    with pytest.raises(InvalidImage):
        verify(io.BytesIO(bytes(data)), probe(bytes(data)), max_pixels=MAX_PIXELS)


def test_verify_refuses_a_png_decompression_bomb_without_decoding_it() -> None:
    bomb = png_bomb(9_000, 9_000, rows=10)
    assert len(bomb) < 10_000
    with pytest.raises(InvalidImage, match="limit"):
        verify(io.BytesIO(bomb), probe(bomb), max_pixels=MAX_PIXELS)


def test_verify_rejects_a_gif_frame_larger_than_its_screen() -> None:
    img = make_image("P", 20, 20)
    data = bytearray(encode(img, ImageFormat.GIF))
    struct.pack_into("<HH", data, 6, 4, 4)  # logical screen 4x4, frame still 20x20
    with pytest.raises(InvalidImage):
        verify(io.BytesIO(bytes(data)), probe(bytes(data)), max_pixels=MAX_PIXELS)


class BoundedReads(io.BytesIO):
    """A file that refuses unbounded or huge reads, as a 100 MB upload would want."""

    def read(self, size: int | None = -1, /) -> bytes:
        assert size is not None and 0 <= size <= 4 * 1024 * 1024, f"read({size})"
        return super().read(size)


@pytest.mark.parametrize("fmt", [ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.GIF])
def test_verify_reads_the_file_incrementally(fmt: ImageFormat) -> None:
    # WebP is not here: Pillow hands the whole file to libwebp (documented in verify()).
    data = encode(make_image("RGB", 600, 400, seed=2), fmt)
    fileobj: BinaryIO = BoundedReads(data)
    verify(fileobj, probe(data), max_pixels=MAX_PIXELS)


def test_verify_accepts_a_progressive_jpeg() -> None:
    data = encode(make_image("RGB", 200, 120), ImageFormat.JPEG, progressive=True)
    verify(io.BytesIO(data), probe(data), max_pixels=MAX_PIXELS)


def test_verify_reports_a_decompression_error_as_invalid_image() -> None:
    data = bytearray(sample(ImageFormat.PNG, size=(200, 200)))
    idat = data.index(b"IDAT")
    (length,) = struct.unpack_from(">I", data, idat - 4)
    body = b"\x00" * length
    data[idat + 4 : idat + 4 + length] = body
    struct.pack_into(">I", data, idat + 4 + length, zlib.crc32(b"IDAT" + body))
    with pytest.raises(InvalidImage):
        verify(io.BytesIO(bytes(data)), probe(bytes(data)), max_pixels=MAX_PIXELS)
