"""A variant is never larger than the original it was made from, when that original could be
served in its place: a property over every accepted format, from the formats' real encoders;
and a resized one is brought within the original's size by a lower quality."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imagekit import photo_png
from PIL import Image

from chitram_core.images.codecs import available_formats
from chitram_core.images.formats import ImageFormat
from chitram_core.images.variants import (
    adapted_formats,
    avif_available,
    parse_spec,
    render_variant,
)

TAKES = {
    ImageFormat.JPEG: "image/webp,*/*",
    ImageFormat.PNG: "image/webp,*/*",
    ImageFormat.GIF: "*/*",
    ImageFormat.WEBP: "image/webp,*/*",
    ImageFormat.AVIF: "image/avif,image/webp,*/*",
    ImageFormat.HEIF: "image/heic,image/webp,*/*",
    ImageFormat.JXL: "image/jxl,image/webp,*/*",
}
"""An ``Accept`` that takes each original's format (as a browser that decodes it sends)."""
FORMATS = [fmt for fmt in available_formats() if fmt in TAKES]
"""Every format this installation accepts (HEIC and JPEG XL with their extras: importing the
codecs registered their encoders too)."""
AVIF = avif_available()


@st.composite
def pictures(draw: st.DrawFn) -> Image.Image:
    """A smooth photo-like gradient, flat shapes or noise, at a drawn size."""
    width, height = draw(st.integers(8, 240)), draw(st.integers(8, 240))
    kind = draw(st.sampled_from(["smooth", "flat", "noise"]))
    if kind == "noise":
        rng = random.Random(draw(st.integers(0, 2**16)))
        return Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    a = draw(st.tuples(*[st.integers(0, 255)] * 3))
    b = draw(st.tuples(*[st.integers(0, 255)] * 3))
    if kind == "flat":
        img = Image.new("RGB", (width, height), a)
        img.paste(b, (width // 4, height // 4, width // 2 + 1, height // 2 + 1))
        return img
    mask = Image.linear_gradient("L").resize((width, height))
    return Image.composite(
        Image.new("RGB", (width, height), a), Image.new("RGB", (width, height), b), mask
    )


def _encode(img: Image.Image, fmt: ImageFormat, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt in (ImageFormat.PNG, ImageFormat.GIF):
        img.save(buf, fmt.pillow_name)
    else:
        img.save(buf, fmt.pillow_name, quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.value for f in FORMATS])
@settings(max_examples=25, deadline=None)
@given(img=pictures(), quality=st.integers(30, 95), spec=st.sampled_from(["w320", "w640"]))
def test_a_variant_needing_no_resize_is_never_larger_than_its_original(
    fmt: ImageFormat, img: Image.Image, quality: int, spec: str
) -> None:
    data = _encode(img, fmt, quality)
    adapt = adapted_formats(TAKES[fmt], avif=AVIF, original=fmt)
    out = render_variant(data, parse_spec(spec), max_pixels=10**7, adapt=adapt)
    assert (out.width, out.height) == img.size
    assert len(out.data) <= len(data), (out.content_type, len(out.data), len(data))


@pytest.mark.parametrize(
    "fmt", [f for f in (ImageFormat.HEIF, ImageFormat.JXL) if f in FORMATS], ids=lambda f: f.value
)
def test_heic_and_jpeg_xl_stand_in_only_for_a_client_that_names_them(fmt: ImageFormat) -> None:
    noise = Image.frombytes("RGB", (64, 48), random.Random(7).randbytes(64 * 48 * 3))
    data = _encode(noise, fmt, 40)  # small for its pixels: no re-encoding is smaller
    named = adapted_formats(TAKES[fmt], avif=AVIF, original=fmt)
    out = render_variant(data, parse_spec("w320"), max_pixels=10**7, adapt=named)
    assert (out.data, out.content_type) == (data, fmt.mime)
    anyone = adapted_formats("image/webp,*/*", avif=AVIF, original=fmt)
    assert anyone.original is None and anyone.token != named.token  # stored apart
    other = render_variant(data, parse_spec("w320"), max_pixels=10**7, adapt=anyone)
    assert other.content_type == "image/webp"


def test_a_still_variant_of_an_animation_is_never_its_original() -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    adapt = adapted_formats("*/*", avif=AVIF, original=ImageFormat.GIF)
    out = render_variant(buf.getvalue(), parse_spec("w320"), max_pixels=10**7, adapt=adapt)
    assert out.content_type == "image/png"
    with Image.open(io.BytesIO(out.data)) as still:
        assert getattr(still, "n_frames", 1) == 1


@pytest.mark.parametrize("accept", ["*/*", "image/webp,*/*", "image/avif,image/webp,*/*"])
@pytest.mark.parametrize("source_quality", [30, 50])
def test_a_resized_variant_of_a_strongly_compressed_jpeg_is_not_larger(
    accept: str, source_quality: int
) -> None:
    buf = io.BytesIO()
    with Image.open(io.BytesIO(photo_png(800, 600))) as img:
        img.save(buf, "JPEG", quality=source_quality)
    data = buf.getvalue()
    adapt = adapted_formats(accept, avif=AVIF)
    out = render_variant(data, parse_spec("w640"), max_pixels=10**7, adapt=adapt)
    assert out.width == 640
    assert len(out.data) <= len(data), (out.content_type, len(out.data), len(data))
    # A quality in the spec is used as asked, whatever the size.
    asked = render_variant(data, parse_spec("w640-q85"), max_pixels=10**7, adapt=adapt)
    assert len(asked.data) > len(out.data)
