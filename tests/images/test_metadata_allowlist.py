"""The metadata allow-list (docs/http-api.md#uploads): per format, only the listed blocks survive.

Each test builds a clean image, adds blocks that must stay and blocks that must go, strips it,
and reads the result with readers that share no code with the stripper: the walkers in
``metadata_kit``, Debian's exiftool, and Pillow (same pixels, orientation and ICC profile).
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metadata_kit import (
    GIF_EXTENSIONS,
    JPEG_SEGMENTS,
    PNG_CHUNKS,
    WEBP_CHUNKS,
    base_gif,
    base_jpeg,
    base_png,
    base_webp,
    exiftool_blocks,
    exiftool_report,
    gif_insert,
    gif_kinds,
    jpeg_kinds,
    png_chunk,
    png_kinds,
    require_exiftool,
    webp_chunk,
    webp_kinds,
    webp_top_chunks,
    webp_with_chunks,
)
from PIL import Image

from chitram_core.errors import InvalidImage
from chitram_core.images.formats import ImageFormat, probe, verify
from chitram_core.images.metadata import MAX_EDITS, Edit, MetadataScanner, strip_bytes
from chitram_core.testing.strategies import chunkings, make_image

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ORIENTATION = 0x0112


def frames(data: bytes) -> list[tuple[bytes, dict[str, object]]]:
    """Every frame's pixels and the display-relevant info, as Pillow reads them."""
    out = []
    with Image.open(io.BytesIO(data)) as img:
        for index in range(getattr(img, "n_frames", 1)):
            img.seek(index)
            img.load()
            info = {k: img.info.get(k) for k in ("transparency", "duration", "loop")}
            out.append((img.tobytes(), info))
    return out


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def assert_same_picture(before: bytes, after: bytes, fmt: ImageFormat) -> None:
    assert frames(after) == frames(before)
    old, new = opened(before), opened(after)
    assert new.getexif().get(ORIENTATION) == old.getexif().get(ORIENTATION)
    assert new.info.get("icc_profile") == old.info.get("icc_profile")
    verify(io.BytesIO(after), probe(after), max_pixels=10**6)
    assert planned_edits(after, fmt) == []


def planned_edits(data: bytes, fmt: ImageFormat) -> list[object]:
    scanner = MetadataScanner(fmt)
    scanner.feed(data)
    return list(scanner.finish())


# --- JPEG ---------------------------------------------------------------------------------


def jpeg_with(names: list[str], seed: int = 0) -> bytes:
    base = base_jpeg(seed)
    (jfif_length,) = struct.unpack_from(">H", base, 4)
    cut = 4 + jfif_length  # after SOI and Pillow's JFIF
    return base[:cut] + b"".join(JPEG_SEGMENTS[n][0] for n in names) + base[cut:]


def expected_jpeg_kinds(names: list[str]) -> list[str]:
    base = jpeg_kinds(base_jpeg())
    kept: list[str] = []
    for name in names:
        kind = JPEG_SEGMENTS[name][1]
        if kind is not None and not (kind == "exif" and "exif" in kept):
            kept.append(kind)
    return base[:1] + kept + base[1:]


@pytest.mark.parametrize("name", sorted(JPEG_SEGMENTS))
def test_jpeg_segment_is_kept_only_when_on_the_allow_list(name: str) -> None:
    data = jpeg_with([name])
    stripped = strip_bytes(data, ImageFormat.JPEG)
    assert jpeg_kinds(stripped) == expected_jpeg_kinds([name])
    assert_same_picture(data, stripped, ImageFormat.JPEG)
    kept = JPEG_SEGMENTS[name][1] is not None
    assert exiftool_blocks(stripped, ImageFormat.JPEG) == exiftool_blocks(
        data if kept else base_jpeg(), ImageFormat.JPEG
    )


@pytest.mark.parametrize(
    "marker", [0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xEB, 0xEC, 0xED, 0xEF, 0xFE]
)
def test_every_other_application_segment_goes(marker: int) -> None:
    segment = bytes((0xFF, marker)) + struct.pack(">H", 9) + b"payload"
    base = base_jpeg()
    data = base[:2] + segment + base[2:]
    assert strip_bytes(data, ImageFormat.JPEG) == base


def test_jpeg_keeps_orientation_and_icc_as_exiftool_reads_them() -> None:
    data = jpeg_with(["icc", "exif", "xmp", "c2pa", "ducky"])
    report = exiftool_report(strip_bytes(data, ImageFormat.JPEG), ImageFormat.JPEG)
    assert "Orientation = 6" in report
    assert "ProfileDescription" in report
    assert "GPS" not in report and "ChitramCam" not in report


def test_jfif_thumbnail_and_adobe_padding_are_cut_to_their_defined_bytes() -> None:
    stripped = strip_bytes(jpeg_with(["jfif_thumbnail", "adobe_padded"]), ImageFormat.JPEG)
    report = exiftool_report(stripped, ImageFormat.JPEG)
    assert "ThumbnailWidth = 0" in report and "ThumbnailWidth = 2" not in report
    assert b"secret sauce" not in stripped
    assert "DCTEncodeVersion = 100" in report  # exiftool still reads the Adobe segment


@FAST
@given(st.lists(st.sampled_from(sorted(JPEG_SEGMENTS)), max_size=8), st.integers(0, 50))
def test_jpeg_any_mix_keeps_exactly_the_allowed_segments_and_the_pixels(
    names: list[str], seed: int
) -> None:
    data = jpeg_with(names, seed)
    stripped = strip_bytes(data, ImageFormat.JPEG)
    assert jpeg_kinds(stripped) == expected_jpeg_kinds(names)
    assert frames(stripped) == frames(data)
    assert opened(stripped).getexif().get(ORIENTATION) == (6 if "exif" in names else None)
    assert planned_edits(stripped, ImageFormat.JPEG) == []


# --- PNG ----------------------------------------------------------------------------------


def png_with(names: list[str], seed: int = 0) -> bytes:
    base = base_png(seed)
    cut = 8 + 25  # after the signature and IHDR
    return base[:cut] + b"".join(PNG_CHUNKS[n][0] for n in names) + base[cut:]


def expected_png_kinds(names: list[str]) -> list[str]:
    kept = [PNG_CHUNKS[n][1] for n in names if PNG_CHUNKS[n][1] is not None]
    if kept.count("eXIf") > 1:  # only the last eXIf stays: it is the one Pillow reads
        last = len(kept) - 1 - kept[::-1].index("eXIf")
        kept = [k for i, k in enumerate(kept) if k != "eXIf" or i == last]
    return ["IHDR", *(k for k in kept if k is not None), "IDAT", "IEND"]


@pytest.mark.parametrize("name", sorted(PNG_CHUNKS))
def test_png_chunk_is_kept_only_when_on_the_allow_list(name: str) -> None:
    data = png_with([name])
    stripped = strip_bytes(data, ImageFormat.PNG)
    assert png_kinds(stripped) == expected_png_kinds([name])
    assert_same_picture(data, stripped, ImageFormat.PNG)
    kept = PNG_CHUNKS[name][1] is not None
    assert exiftool_blocks(stripped, ImageFormat.PNG) == exiftool_blocks(
        data if kept else base_png(), ImageFormat.PNG
    )


@FAST
@given(st.lists(st.sampled_from(sorted(PNG_CHUNKS)), max_size=8), st.integers(0, 50))
def test_png_any_mix_keeps_exactly_the_allowed_chunks_and_the_pixels(
    names: list[str], seed: int
) -> None:
    data = png_with(names, seed)
    stripped = strip_bytes(data, ImageFormat.PNG)
    assert png_kinds(stripped) == expected_png_kinds(names)
    assert frames(stripped) == frames(data)
    assert opened(stripped).info.get("icc_profile") == opened(data).info.get("icc_profile")
    assert opened(stripped).getexif().get(ORIENTATION) == (3 if "eXIf" in names else None)
    assert planned_edits(stripped, ImageFormat.PNG) == []


def test_apng_keeps_its_animation_chunks_and_every_frame() -> None:
    images = [make_image("RGB", 8, 8, seed) for seed in range(3)]
    buf = io.BytesIO()
    images[0].save(buf, "PNG", save_all=True, append_images=images[1:], duration=50, loop=2)
    clean = buf.getvalue()
    data = clean[:33] + PNG_CHUNKS["tEXt"][0] + PNG_CHUNKS["caBX"][0] + clean[33:]
    stripped = strip_bytes(data, ImageFormat.PNG)
    assert stripped == clean
    assert {"acTL", "fcTL", "fdAT"} <= set(png_kinds(stripped))
    assert len(frames(stripped)) == 3


# --- WebP ---------------------------------------------------------------------------------


def webp_with(names: list[str], seed: int = 0) -> bytes:
    extra = b"".join(WEBP_CHUNKS[n][0] for n in names)
    return webp_with_chunks(base_webp(seed), extra, exif="EXIF" in names, xmp="XMP" in names)


def expected_webp_kinds(names: list[str]) -> list[str]:
    return [*webp_kinds(base_webp()), *(["EXIF"] if "EXIF" in names else [])]


def assert_consistent_webp(data: bytes) -> None:
    (riff,) = struct.unpack_from("<I", data, 4)
    assert riff == len(data) - 8
    chunks = webp_top_chunks(data)
    _ctype, offset, size = chunks[-1]
    assert offset + size + (size & 1) == len(data)
    types = {c for c, _, _ in chunks}
    flags = data[20]
    assert bool(flags & 0x08) == (b"EXIF" in types)
    assert bool(flags & 0x04) == (b"XMP " in types)
    assert bool(flags & 0x20) == (b"ICCP" in types)


@pytest.mark.parametrize("name", sorted(WEBP_CHUNKS))
def test_webp_chunk_is_kept_only_when_on_the_allow_list(name: str) -> None:
    data = webp_with([name])
    stripped = strip_bytes(data, ImageFormat.WEBP)
    assert webp_kinds(stripped) == expected_webp_kinds([name])
    assert_consistent_webp(stripped)
    assert_same_picture(data, stripped, ImageFormat.WEBP)
    kept = WEBP_CHUNKS[name][1] is not None
    assert exiftool_blocks(stripped, ImageFormat.WEBP) == exiftool_blocks(
        data if kept else base_webp(), ImageFormat.WEBP
    )


@FAST
@given(st.lists(st.sampled_from(sorted(WEBP_CHUNKS)), max_size=6), st.integers(0, 50))
def test_webp_any_mix_keeps_exactly_the_allowed_chunks_and_the_pixels(
    names: list[str], seed: int
) -> None:
    data = webp_with(names, seed)
    stripped = strip_bytes(data, ImageFormat.WEBP)
    assert webp_kinds(stripped) == expected_webp_kinds(names)
    assert_consistent_webp(stripped)
    assert frames(stripped) == frames(data)
    assert opened(stripped).info["icc_profile"] == opened(data).info["icc_profile"]
    assert opened(stripped).getexif().get(ORIENTATION) == (8 if "EXIF" in names else None)
    assert planned_edits(stripped, ImageFormat.WEBP) == []


def animated_webp() -> bytes:
    images = [make_image("RGBA", 8, 6, seed) for seed in range(3)]
    buf = io.BytesIO()
    images[0].save(buf, "WEBP", save_all=True, append_images=images[1:], duration=40, lossless=True)
    return buf.getvalue()


def test_webp_frames_lose_unknown_sub_chunks_and_their_sizes_follow() -> None:
    clean = animated_webp()
    _ctype, offset, size = next(c for c in webp_top_chunks(clean) if c[0] == b"ANMF")
    assert size % 2 == 0
    extra = webp_chunk(b"ABCD", b"smuggled") + webp_chunk(b"XMP ", b"<x/>")
    frame = clean[offset : offset + size] + extra
    anmf = b"ANMF" + struct.pack("<I", len(frame)) + frame
    body = clean[12 : offset - 8] + anmf + clean[offset + size :]
    data = b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body
    assert frames(data) == frames(clean)
    stripped = strip_bytes(data, ImageFormat.WEBP)
    assert stripped == clean
    assert len(frames(stripped)) == 3


# --- GIF ----------------------------------------------------------------------------------


def gif_with(names: list[str], seed: int = 0) -> bytes:
    return gif_insert(base_gif(seed), b"".join(GIF_EXTENSIONS[n][0] for n in names))


def expected_gif_kinds(names: list[str]) -> list[str]:
    kept = [GIF_EXTENSIONS[n][1] for n in names if GIF_EXTENSIONS[n][1] is not None]
    return [*(k for k in kept if k is not None), *gif_kinds(base_gif())]


@pytest.mark.parametrize("name", sorted(GIF_EXTENSIONS))
def test_gif_extension_is_kept_only_when_on_the_allow_list(name: str) -> None:
    data = gif_with([name])
    stripped = strip_bytes(data, ImageFormat.GIF)
    assert gif_kinds(stripped) == expected_gif_kinds([name])
    assert_same_picture(data, stripped, ImageFormat.GIF)
    assert b"hidden" not in stripped
    kept = GIF_EXTENSIONS[name][1] is not None
    assert exiftool_blocks(stripped, ImageFormat.GIF) == exiftool_blocks(
        data if kept else base_gif(), ImageFormat.GIF
    )


def test_gif_loop_and_delay_survive_their_canonical_rewrite() -> None:
    data = gif_with(["loop_smuggling", "graphic_control_smuggling"])
    stripped = strip_bytes(data, ImageFormat.GIF)
    assert len(stripped) < len(data)
    img = opened(stripped)
    assert img.info["loop"] == 2 and img.info["duration"] == 100  # 10 hundredths
    report = exiftool_report(stripped, ImageFormat.GIF)
    assert "AnimationIterations = 2" in report and "delay=0.10" in report


@FAST
@given(st.lists(st.sampled_from(sorted(GIF_EXTENSIONS)), max_size=8), st.integers(0, 50))
def test_gif_any_mix_keeps_exactly_the_allowed_extensions_and_the_pixels(
    names: list[str], seed: int
) -> None:
    data = gif_with(names, seed)
    stripped = strip_bytes(data, ImageFormat.GIF)
    assert gif_kinds(stripped) == expected_gif_kinds(names)
    assert frames(stripped) == frames(data)
    assert planned_edits(stripped, ImageFormat.GIF) == []


def test_animated_gif_keeps_its_loop_and_every_frame_delay() -> None:
    images = [make_image("P", 10, 10, seed) for seed in range(3)]
    buf = io.BytesIO()
    images[0].save(
        buf, "GIF", save_all=True, append_images=images[1:], duration=70, loop=3, comment=b"c"
    )
    data = buf.getvalue()
    stripped = strip_bytes(data, ImageFormat.GIF)
    assert "extension-FE" in gif_kinds(data) and "extension-FE" not in gif_kinds(stripped)
    assert frames(stripped) == frames(data)
    assert opened(stripped).info["loop"] == 3


# --- everything at once, as exiftool's tag groups see it -------------------------------------


PRIVATE_GROUPS = ("XMP", "GPS", "IPTC", "Photoshop", "JUMBF", "C2PA", "Ducky", "MPF", "PNG-tEXt")


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        (ImageFormat.JPEG, jpeg_with(sorted(JPEG_SEGMENTS))),
        (ImageFormat.PNG, png_with(sorted(PNG_CHUNKS))),
        (ImageFormat.WEBP, webp_with(sorted(WEBP_CHUNKS))),
        (ImageFormat.GIF, gif_with(sorted(GIF_EXTENSIONS))),
    ],
    ids=lambda v: v.name if isinstance(v, ImageFormat) else "",
)
def test_exiftool_finds_no_private_metadata_after_stripping(fmt: ImageFormat, data: bytes) -> None:
    tool = require_exiftool()

    def groups(blob: bytes) -> dict[str, object]:
        proc = subprocess.run(
            [tool, "-j", "-a", "-u", "-G1", "-"],
            input=blob,
            capture_output=True,
            check=True,
            timeout=60,
        )
        tags: dict[str, object] = json.loads(proc.stdout)[0]
        return tags

    before, after = groups(data), groups(strip_bytes(data, fmt))
    assert any(key.split(":")[0].startswith(PRIVATE_GROUPS) or "Comment" in key for key in before)
    leaked = [
        key
        for key in after
        if key.split(":")[0].startswith(PRIVATE_GROUPS)
        or "Comment" in key
        or key.endswith((":Text", ":Model", ":Meta"))
    ]
    assert leaked == []


def test_png_iccp_is_kept_byte_for_byte() -> None:
    data = png_with(["iCCP", "tEXt"])
    stripped = strip_bytes(data, ImageFormat.PNG)
    profile = zlib.decompress(PNG_CHUNKS["iCCP"][0][8 + 6 : -4])
    assert opened(stripped).info["icc_profile"] == profile
    assert png_chunk(b"tEXt", b"Comment\x00shot at home") not in stripped


# --- streaming -----------------------------------------------------------------------------


@st.composite
def mixed_files(draw: st.DrawFn) -> tuple[bytes, ImageFormat]:
    # The catalogues of blocks are for the marker and chunk formats; the boxed ones (HEIF,
    # AVIF, JPEG XL) are chunked through the scanner in test_image_metadata.
    fmt = draw(
        st.sampled_from([ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.WEBP, ImageFormat.GIF])
    )
    catalog, build = {
        ImageFormat.JPEG: (JPEG_SEGMENTS, jpeg_with),
        ImageFormat.PNG: (PNG_CHUNKS, png_with),
        ImageFormat.WEBP: (WEBP_CHUNKS, webp_with),
        ImageFormat.GIF: (GIF_EXTENSIONS, gif_with),
    }[fmt]
    names = draw(st.lists(st.sampled_from(sorted(catalog)), max_size=6))
    return build(names), fmt


@FAST
@given(st.data())
def test_the_allow_list_plans_the_same_edits_for_any_chunking(data: st.DataObject) -> None:
    blob, fmt = data.draw(mixed_files())
    chunks = data.draw(chunkings(blob))
    scanner = MetadataScanner(fmt)
    for chunk in chunks:
        scanner.feed(chunk)
    assert scanner.finish() == planned_edits(blob, fmt)


def test_a_run_of_adjacent_junk_is_one_edit() -> None:
    junk = PNG_CHUNKS["private"][0] * 20_000
    base = base_png()
    data = base[:33] + junk + base[33:]
    assert planned_edits(data, ImageFormat.PNG) == [Edit(33, len(junk))]
    assert strip_bytes(data, ImageFormat.PNG) == base


def test_too_many_separate_blocks_to_remove_is_an_invalid_image() -> None:
    pair = PNG_CHUNKS["private"][0] + PNG_CHUNKS["gAMA"][0]
    base = base_png()
    data = base[:33] + pair * (MAX_EDITS + 1) + base[33:]
    with pytest.raises(InvalidImage, match="Too many"):
        strip_bytes(data, ImageFormat.PNG)
    fine = base[:33] + pair * MAX_EDITS + base[33:]
    assert len(planned_edits(fine, ImageFormat.PNG)) == MAX_EDITS
