"""Which colour profile a thumbnail or variant carries: none for sRGB (what an untagged image
means already), the source's for any other space."""

from __future__ import annotations

import io

import pytest
from imagekit import other_rgb_profile
from PIL import Image, ImageCms

from chitram_core.images.profiles import is_srgb, profile_to_keep
from chitram_core.images.thumbnails import ThumbnailParams, render_thumbnail
from chitram_core.images.variants import avif_available, parse_spec, render_variant

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _decoded_profile(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "teal").save(buf, fmt)
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        profile = img.info["icc_profile"]
    assert isinstance(profile, bytes)
    return profile


def test_an_srgb_profile_is_dropped() -> None:
    assert is_srgb(SRGB)
    assert profile_to_keep(SRGB, "RGB") is None
    assert profile_to_keep(SRGB, "RGBA") is None


def test_the_profile_a_jpeg_xl_decoder_attaches_is_srgb() -> None:
    pytest.importorskip("pillow_jxl", reason="the jxl extra is not installed")
    assert profile_to_keep(_decoded_profile("JXL"), "RGB") is None


def test_a_profile_of_another_space_is_kept() -> None:
    other = other_rgb_profile()
    assert not is_srgb(other)
    assert profile_to_keep(other, "RGB") == other


def test_a_profile_is_only_kept_on_pixels_of_its_colour_space() -> None:
    other = other_rgb_profile()
    assert profile_to_keep(other, "L") is None
    assert profile_to_keep(b"\0" * 16 + b"CMYK" + b"\0" * 200, "RGB") is None
    grey = b"\0" * 16 + b"GRAY" + b"\0" * 200
    assert profile_to_keep(grey, "L") == grey


def test_an_unreadable_profile_is_not_taken_for_srgb() -> None:
    junk = b"\0" * 16 + b"RGB " + b"\x07" * 300
    assert not is_srgb(junk)
    assert profile_to_keep(junk, "RGB") == junk  # kept as before: nothing is known of it
    assert profile_to_keep(None, "RGB") is None


def test_a_thumbnail_of_an_srgb_tagged_image_has_no_profile() -> None:
    for profile, kept in ((SRGB, None), (other_rgb_profile(), other_rgb_profile())):
        buf = io.BytesIO()
        Image.new("RGB", (400, 300), "orange").save(buf, "JPEG", icc_profile=profile)
        thumb = render_thumbnail(buf.getvalue(), ThumbnailParams(), max_pixels=10**7)
        with Image.open(io.BytesIO(thumb.data)) as img:
            assert img.info.get("icc_profile") == kept


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", *(["avif"] if avif_available() else [])])
def test_a_variant_in_any_format_drops_srgb_and_keeps_another_space(fmt: str) -> None:
    for profile, kept in ((SRGB, None), (other_rgb_profile(), other_rgb_profile())):
        buf = io.BytesIO()
        Image.new("RGB", (400, 300), "orange").save(buf, "PNG", icc_profile=profile)
        out = render_variant(buf.getvalue(), parse_spec(f"w200-{fmt}"), max_pixels=10**7)
        with Image.open(io.BytesIO(out.data)) as img:
            assert img.info.get("icc_profile") == kept
