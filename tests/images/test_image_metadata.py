"""Specifications for metadata stripping: what goes, what stays, and that pixels never change."""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import AsyncIterator

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from chitram_core.errors import InvalidImage
from chitram_core.images.formats import ImageFormat, probe, verify
from chitram_core.images.metadata import (
    Edit,
    MetadataScanner,
    apply_edits,
    exif_orientation,
    strip_bytes,
)
from chitram_core.testing.strategies import (
    MODES,
    SampleImage,
    chunkings,
    encode,
    make_image,
    srgb_profile,
    truncated_images,
    valid_images,
    with_metadata,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GPS = 0x8825
ORIENTATION = 0x0112


BOXED = (ImageFormat.HEIF, ImageFormat.AVIF, ImageFormat.JXL)


@st.composite
def images_with_metadata(draw: st.DrawFn) -> tuple[bytes, ImageFormat]:
    fmt = draw(st.sampled_from(list(ImageFormat)))
    mode = draw(st.sampled_from([m for m in MODES[fmt] if m not in ("I;16", "1", "CMYK")]))
    orientation = draw(st.one_of(st.none(), st.integers(1, 8)))
    trailer = draw(st.sampled_from([b"", b"<html><script>alert(1)</script></html>"]))
    if fmt in BOXED:
        trailer = b""  # no end marker: a trailer is read as a box and refused (tested apart)
    data = with_metadata(
        mode,
        draw(st.integers(1, 24)),
        draw(st.integers(1, 24)),
        fmt,
        orientation=orientation,
        seed=draw(st.integers(0, 1000)),
        trailer=trailer,
    )
    return data, fmt


def scan(data: bytes, fmt: ImageFormat, chunks: list[bytes] | None = None) -> list[Edit]:
    scanner = MetadataScanner(fmt)
    for chunk in chunks if chunks is not None else [data]:
        scanner.feed(chunk)
    return scanner.finish()


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# --- the property --------------------------------------------------------------------------


@FAST
@given(images_with_metadata())
def test_stripping_keeps_pixels_orientation_and_icc_and_drops_gps(
    case: tuple[bytes, ImageFormat],
) -> None:
    data, fmt = case
    stripped = strip_bytes(data, fmt)
    before, after = opened(data), opened(stripped)
    assert after.tobytes() == before.tobytes()
    assert after.size == before.size
    shown_before, shown_after = ImageOps.exif_transpose(before), ImageOps.exif_transpose(after)
    assert shown_after.size == shown_before.size
    assert shown_after.tobytes() == shown_before.tobytes()
    assert dict(after.getexif().get_ifd(GPS)) == {}
    assert after.info.get("icc_profile") == before.info.get("icc_profile")
    for key in ("xmp", "XML:com.adobe.xmp", "comment", "Comment", "Location", "photoshop"):
        # HEIF and AVIF keep their (blanked) XMP item in place: offsets must not move.
        assert key not in after.info or not after.info[key].strip()
    assert not stripped.endswith(b"</html>")
    verify(io.BytesIO(stripped), probe(stripped), max_pixels=10**6)


@FAST
@given(valid_images())
def test_a_file_with_nothing_to_strip_gives_no_edits(image: SampleImage) -> None:
    assert scan(image.data, image.format) == []


@FAST
@given(images_with_metadata())
def test_stripping_twice_changes_nothing_more(case: tuple[bytes, ImageFormat]) -> None:
    data, fmt = case
    assert scan(strip_bytes(data, fmt), fmt) == []


@FAST
@given(st.data())
def test_the_scanner_plans_the_same_edits_for_any_chunking(data: st.DataObject) -> None:
    image, fmt = data.draw(images_with_metadata())
    chunks = data.draw(chunkings(image))
    assert scan(image, fmt, chunks) == scan(image, fmt)


@FAST
@given(st.data())
def test_the_scanner_accepts_one_byte_chunks(data: st.DataObject) -> None:
    image, fmt = data.draw(images_with_metadata())
    chunks = [image[i : i + 1] for i in range(len(image))]
    assert scan(image, fmt, chunks) == scan(image, fmt)


@FAST
@given(st.data())
def test_apply_edits_streams_the_same_bytes_as_strip_bytes(data: st.DataObject) -> None:
    image, fmt = data.draw(images_with_metadata())
    chunks = data.draw(chunkings(image))
    edits = scan(image, fmt)

    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def collect() -> bytes:
        return b"".join([piece async for piece in apply_edits(source(), edits)])

    # anyio.run here rather than an anyio test: Hypothesis drives this test synchronously.
    assert anyio.run(collect) == strip_bytes(image, fmt)


# --- malformed input -----------------------------------------------------------------------


@FAST
@given(truncated_images())
def test_a_truncated_file_is_invalid_or_still_whole(data: bytes) -> None:
    fmt = probe_format(data)
    if fmt is None:
        return
    try:
        stripped = strip_bytes(data, fmt)
    except InvalidImage:
        return
    # Only a GIF cut before its trailer, or a bare JPEG XL codestream (its end is the decoder's
    # to find), passes the scanner; the upload's verify step then either decodes it whole or
    # refuses it, never anything else.
    assert fmt is ImageFormat.GIF or (fmt is ImageFormat.JXL and data[:2] == b"\xff\x0a")
    import io

    from chitram_core.images.formats import probe, verify

    try:
        verify(io.BytesIO(stripped), probe(stripped), max_pixels=40_000_000)
    except InvalidImage:
        return
    opened(stripped)


def probe_format(data: bytes) -> ImageFormat | None:
    from chitram_core.errors import ChitramError
    from chitram_core.images.formats import sniff

    try:
        return sniff(data)
    except ChitramError:
        return None


@FAST
@given(st.sampled_from(list(ImageFormat)), st.binary(max_size=200))
def test_the_scanner_raises_only_invalid_image_on_garbage(fmt: ImageFormat, tail: bytes) -> None:
    magic = {
        ImageFormat.JPEG: b"\xff\xd8\xff",
        ImageFormat.PNG: b"\x89PNG\r\n\x1a\n",
        ImageFormat.GIF: b"GIF89a",
        ImageFormat.WEBP: b"RIFF\x40\x00\x00\x00WEBP",
        ImageFormat.HEIF: b"\x00\x00\x00\x18ftypheic",
        ImageFormat.AVIF: b"\x00\x00\x00\x18ftypavif",
        ImageFormat.JXL: b"\x00\x00\x00\x0cJXL \r\n\x87\n",
    }[fmt]
    with contextlib.suppress(InvalidImage):
        scan(magic + tail, fmt)


def test_feed_does_not_raise_and_finish_reports_the_problem() -> None:
    scanner = MetadataScanner(ImageFormat.PNG)
    scanner.feed(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT")
    scanner.feed(b"more bytes")
    with pytest.raises(InvalidImage, match="IHDR"):
        scanner.finish()


# --- format specifics ----------------------------------------------------------------------


def jpeg_markers(data: bytes) -> list[int]:
    markers, pos = [], 2
    while pos < len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    return markers


def test_jpeg_keeps_jfif_icc_and_a_minimal_orientation_exif() -> None:
    data = with_metadata("RGB", 40, 20, ImageFormat.JPEG, orientation=6)
    stripped = strip_bytes(data, ImageFormat.JPEG)
    assert 0xED in jpeg_markers(data) and 0xFE in jpeg_markers(data)
    markers = jpeg_markers(stripped)
    assert 0xED not in markers and 0xFE not in markers
    assert markers.count(0xE1) == 1 and 0xE2 in markers and 0xE0 in markers
    exif = opened(stripped).getexif()
    assert dict(exif) == {ORIENTATION: 6}
    assert ImageOps.exif_transpose(opened(stripped)).size == (20, 40)


@pytest.mark.parametrize("orientation", [None, 1])
def test_an_upright_jpeg_loses_its_exif_entirely(orientation: int | None) -> None:
    data = with_metadata("RGB", 40, 20, ImageFormat.JPEG, orientation=orientation)
    stripped = strip_bytes(data, ImageFormat.JPEG)
    assert 0xE1 not in jpeg_markers(stripped)
    assert b"ChitramCam" not in stripped


def test_jpeg_drops_everything_after_the_end_of_image() -> None:
    clean = encode(make_image("RGB", 16, 16), ImageFormat.JPEG)
    tail = b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00GPS-here<html>"
    edits = scan(clean + tail, ImageFormat.JPEG)
    assert edits == [Edit(len(clean), len(tail))]


def test_progressive_jpeg_is_walked_through_all_its_scans() -> None:
    img = make_image("RGB", 64, 48)
    data = encode(img, ImageFormat.JPEG, progressive=True, exif=Image.Exif(), comment=b"c")
    stripped = strip_bytes(data, ImageFormat.JPEG)
    assert opened(stripped).tobytes() == opened(data).tobytes()
    assert b"\xff\xfe" not in stripped[: stripped.index(b"\xff\xda")]


def test_png_drops_text_chunks_and_bytes_after_iend_but_keeps_iccp() -> None:
    data = with_metadata("RGB", 8, 8, ImageFormat.PNG, orientation=None, trailer=b"<html>")
    stripped = strip_bytes(data, ImageFormat.PNG)
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
        assert chunk in data and chunk not in stripped
    assert b"iCCP" in stripped
    assert stripped.endswith(b"IEND\xaeB`\x82")


def test_webp_patches_the_riff_size_and_vp8x_flags() -> None:
    for orientation, exif_flag in ((None, 0), (8, 0x08)):
        data = with_metadata("RGBA", 10, 10, ImageFormat.WEBP, orientation=orientation)
        stripped = strip_bytes(data, ImageFormat.WEBP)
        (riff,) = struct.unpack_from("<I", stripped, 4)
        assert riff == len(stripped) - 8
        assert stripped[20] & 0x04 == 0  # XMP flag cleared
        assert stripped[20] & 0x08 == exif_flag
        assert stripped[20] & 0x20  # ICC flag kept
        assert b"XMP " not in stripped


def test_gif_drops_comments_and_xmp_application_extensions() -> None:
    data = with_metadata("P", 10, 10, ImageFormat.GIF)
    stripped = strip_bytes(data, ImageFormat.GIF)
    assert b"XMP DataXMP" in data and b"XMP DataXMP" not in stripped
    assert b"shot at home" not in stripped
    assert opened(stripped).tobytes() == opened(data).tobytes()


def test_animated_gif_keeps_every_frame() -> None:
    frames = [make_image("P", 12, 12, seed=i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], comment=b"hi")
    data = buf.getvalue()
    stripped = strip_bytes(data, ImageFormat.GIF)
    assert len(stripped) < len(data)
    with Image.open(io.BytesIO(stripped)) as img:
        assert img.n_frames == 3


def test_icc_profile_is_kept_byte_for_byte() -> None:
    data = with_metadata("RGB", 8, 8, ImageFormat.JPEG)
    assert opened(strip_bytes(data, ImageFormat.JPEG)).info["icc_profile"] == srgb_profile()


def test_exif_orientation_reads_both_byte_orders() -> None:
    for endian in ("<", ">"):
        head = b"II*\x00" if endian == "<" else b"MM\x00*"
        tiff = (
            head
            + struct.pack(endian + "IH", 8, 1)
            + struct.pack(endian + "HHIHH", ORIENTATION, 3, 1, 7, 0)
            + b"\x00" * 4
        )
        assert exif_orientation(tiff) == (7, endian == "<")
    assert exif_orientation(b"garbage") == (None, True)


@pytest.mark.anyio
async def test_apply_edits_refuses_edits_past_the_end() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"abc"

    with pytest.raises(InvalidImage):
        _ = [piece async for piece in apply_edits(source(), [Edit(5, 2)])]


@pytest.mark.anyio
async def test_apply_edits_handles_empty_chunks_and_edits_spanning_chunks() -> None:
    async def source() -> AsyncIterator[bytes]:
        for chunk in (b"", b"ab", b"", b"cdef", b"g", b""):
            yield chunk

    edits = [Edit(0, 0, b"<"), Edit(1, 4, b"X"), Edit(7, 0, b">")]
    out = b"".join([piece async for piece in apply_edits(source(), edits)])
    assert out == b"<aXfg>"


def test_the_scanner_keeps_o_header_memory_on_a_large_stream() -> None:
    import tracemalloc

    megabyte = b"\x00" * (1024 * 1024)
    body = 40 * len(megabyte)
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 9, 9, 8, 0, 0, 0, 0))
    scanner = MetadataScanner(ImageFormat.PNG)
    scanner.feed(head + struct.pack(">I", body) + b"IDAT")
    tracemalloc.start()
    try:
        for _ in range(40):
            scanner.feed(megabyte)
        scanner.feed(b"\x00\x00\x00\x00" + _chunk(b"tEXt", b"k\x00v") + _chunk(b"IEND", b""))
        edits = scanner.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert len(edits) == 1 and edits[0].length == 15


def _chunk(ctype: bytes, data: bytes) -> bytes:
    import zlib

    crc = zlib.crc32(ctype + data)
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)


@pytest.mark.parametrize("fmt", BOXED)
def test_a_trailer_after_the_last_box_is_refused(fmt: ImageFormat) -> None:
    data = with_metadata("RGB", 20, 10, fmt, trailer=b"<html><script>alert(1)</script></html>")
    with pytest.raises(InvalidImage):
        strip_bytes(data, fmt)
