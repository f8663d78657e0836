"""Specifications for thumbnails: every mode, orientation, bombs, timeouts, stable keys."""

from __future__ import annotations

import io
import resource
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chitram_core.engine import InlineEngine, render_thumbnail_async
from chitram_core.engine import work as engine_work
from chitram_core.errors import InvalidImage
from chitram_core.images import thumbnails
from chitram_core.images.formats import ImageFormat
from chitram_core.images.thumbnails import (
    RenderedThumbnail,
    ThumbnailParams,
    render_thumbnail,
)
from chitram_core.testing.strategies import (
    SampleImage,
    encode,
    gps_exif,
    hostile_images,
    make_image,
    png_bomb,
    polyglot_png,
    truncated_images,
    valid_images,
    with_metadata,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_PIXELS = 40_000_000
DEFAULT = ThumbnailParams()


def render(data: bytes, params: ThumbnailParams = DEFAULT) -> tuple[RenderedThumbnail, Image.Image]:
    thumb = render_thumbnail(data, params, max_pixels=MAX_PIXELS)
    img = Image.open(io.BytesIO(thumb.data))
    img.load()
    assert img.size == (thumb.width, thumb.height)
    return thumb, img


CORPUS = [
    ("1", ImageFormat.PNG, {}),
    ("L", ImageFormat.PNG, {}),
    ("LA", ImageFormat.PNG, {}),
    ("P", ImageFormat.PNG, {}),
    ("P", ImageFormat.PNG, {"transparency": 0}),
    ("RGB", ImageFormat.PNG, {}),
    ("RGBA", ImageFormat.PNG, {}),
    ("I;16", ImageFormat.PNG, {}),
    ("L", ImageFormat.JPEG, {}),
    ("RGB", ImageFormat.JPEG, {}),
    ("RGB", ImageFormat.JPEG, {"progressive": True}),
    ("CMYK", ImageFormat.JPEG, {}),
    ("P", ImageFormat.GIF, {}),
    ("RGB", ImageFormat.WEBP, {}),
    ("RGBA", ImageFormat.WEBP, {}),
]


@pytest.mark.parametrize(("mode", "fmt", "options"), CORPUS, ids=lambda v: str(v))
def test_every_mode_gives_a_jpeg_fitting_the_box(
    mode: str, fmt: ImageFormat, options: dict[str, object]
) -> None:
    data = encode(make_image(mode, 640, 320, seed=5), fmt, **options)
    thumb, img = render(data)
    assert thumb.content_type == "image/jpeg"
    assert img.format == "JPEG" and img.mode in ("RGB", "L")
    assert (thumb.width, thumb.height) == (300, 150)


@FAST
@given(valid_images(max_side=64))
def test_any_valid_image_makes_a_thumbnail_keeping_its_aspect_ratio(image: SampleImage) -> None:
    thumb, _ = render(image.data, ThumbnailParams(size=32))
    assert max(thumb.width, thumb.height) == min(32, max(image.width, image.height))
    if image.width >= 8 and image.height >= 8:
        ratio, source_ratio = thumb.width / thumb.height, image.width / image.height
        assert abs(ratio - source_ratio) / source_ratio < 0.25


def test_transparency_is_flattened_on_white_for_jpeg() -> None:
    data = encode(Image.new("RGBA", (50, 50), (255, 0, 0, 0)), ImageFormat.PNG)
    _, img = render(data)
    assert img.convert("RGB").getpixel((10, 10)) == pytest.approx((255, 255, 255), abs=3)


def test_palette_transparency_is_flattened_on_white() -> None:
    img = Image.new("P", (40, 40), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    data = encode(img, ImageFormat.PNG, transparency=0)
    _, thumb = render(data)
    assert thumb.convert("RGB").getpixel((5, 5)) == pytest.approx((255, 255, 255), abs=3)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_thumbnails_keep_alpha(fmt: str) -> None:
    data = encode(Image.new("RGBA", (50, 50), (255, 0, 0, 0)), ImageFormat.PNG)
    thumb, img = render(data, ThumbnailParams(format=fmt))
    assert img.format == fmt and img.mode == "RGBA"
    assert thumb.content_type == f"image/{fmt.lower()}"


def test_a_16_bit_png_keeps_its_tones() -> None:
    gray = Image.new("I;16", (64, 64), 32768)
    _, img = render(encode(gray, ImageFormat.PNG))
    assert img.convert("L").getpixel((10, 10)) == pytest.approx(128, abs=3)


def test_exif_orientation_is_applied() -> None:
    data = with_metadata("RGB", 400, 200, ImageFormat.JPEG, orientation=6)
    thumb, _ = render(data)
    assert (thumb.width, thumb.height) == (150, 300)


def test_orientation_matches_pillow_exif_transpose() -> None:
    from PIL import ImageOps

    left_red = Image.new("RGB", (200, 100), (0, 0, 255))
    left_red.paste((255, 0, 0), (0, 0, 100, 100))
    for orientation in range(1, 9):
        data = encode(left_red, ImageFormat.PNG, exif=gps_exif(orientation))
        _, thumb = render(data, ThumbnailParams(size=200, format="PNG"))
        expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        assert thumb.size == expected.size
        for x, y in ((5, 5), (expected.width - 5, expected.height - 5)):
            assert thumb.getpixel((x, y)) == expected.convert("RGB").getpixel((x, y))


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (60, 60), color) for color in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    _, img = render(buf.getvalue())
    red, _green, blue = img.convert("RGB").getpixel((30, 30))  # type: ignore[misc]
    assert red > 200 and blue < 50


def test_animated_webp_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (60, 60), color) for color in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    _, img = render(buf.getvalue())
    red, _green, blue = img.convert("RGB").getpixel((30, 30))  # type: ignore[misc]
    assert red > 200 and blue < 50


def test_small_images_are_not_enlarged() -> None:
    thumb, _ = render(encode(make_image("RGB", 40, 10), ImageFormat.PNG))
    assert (thumb.width, thumb.height) == (40, 10)


def test_draft_and_full_decode_give_the_same_geometry() -> None:
    data = encode(make_image("RGB", 2400, 1600), ImageFormat.JPEG)
    fast = render_thumbnail(data, DEFAULT, max_pixels=MAX_PIXELS)
    full = render_thumbnail(data, DEFAULT, max_pixels=MAX_PIXELS, draft=False)
    assert (fast.width, fast.height) == (full.width, full.height) == (300, 200)


def test_a_file_object_works_as_a_source() -> None:
    data = encode(make_image("RGB", 100, 100), ImageFormat.JPEG)
    assert render_thumbnail(io.BytesIO(data), DEFAULT, max_pixels=MAX_PIXELS).width == 100


# --- failures -------------------------------------------------------------------------------


@FAST
@given(st.one_of(truncated_images(), hostile_images()))
def test_broken_files_fail_with_invalid_image(data: bytes) -> None:
    try:
        render_thumbnail(data, DEFAULT, max_pixels=MAX_PIXELS)
    except InvalidImage as exc:
        assert exc.message


@pytest.mark.parametrize(
    "data", [b"", b"<html>", polyglot_png(), b"\x89PNG\r\n\x1a\n" + b"\x00" * 40]
)
def test_garbage_fails_with_a_reason(data: bytes) -> None:
    with pytest.raises(InvalidImage) as caught:
        render_thumbnail(data, DEFAULT, max_pixels=MAX_PIXELS)
    assert caught.value.message.startswith("Cannot make a thumbnail")


def test_formats_other_than_the_four_are_never_decoded() -> None:
    buf = io.BytesIO()
    make_image("RGB", 20, 20).save(buf, "BMP")
    with pytest.raises(InvalidImage):
        render_thumbnail(buf.getvalue(), DEFAULT, max_pixels=MAX_PIXELS)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_png_decompression_bomb_fails_without_using_its_memory() -> None:
    bomb = png_bomb(9_000, 9_000)  # 81 megapixels of zeros, well under 1 MB compressed
    assert len(bomb) < 1_000_000
    before = max_rss_mb()
    with pytest.raises(InvalidImage, match="limit"):
        render_thumbnail(bomb, DEFAULT, max_pixels=MAX_PIXELS)
    assert max_rss_mb() - before < 40


def test_the_pixel_limit_is_per_call() -> None:
    data = encode(make_image("L", 100, 100), ImageFormat.PNG)
    render_thumbnail(data, DEFAULT, max_pixels=10_000)
    with pytest.raises(InvalidImage, match="limit of 9999"):
        render_thumbnail(data, DEFAULT, max_pixels=9_999)


def test_pillows_own_bomb_error_becomes_invalid_image() -> None:
    header = png_bomb(20_000, 20_000, rows=1)  # past twice Pillow's global limit
    with pytest.raises(InvalidImage):
        render_thumbnail(header, DEFAULT, max_pixels=10**9)


def test_a_truncated_jpeg_body_fails() -> None:
    data = encode(make_image("RGB", 300, 300), ImageFormat.JPEG)
    with pytest.raises(InvalidImage):
        render_thumbnail(data[: len(data) // 2], DEFAULT, max_pixels=MAX_PIXELS)


# --- params -------------------------------------------------------------------------------


def test_key_suffix_is_short_stable_and_depends_on_every_param() -> None:
    keys = {
        ThumbnailParams().key_suffix,
        ThumbnailParams(size=301).key_suffix,
        ThumbnailParams(format="WEBP").key_suffix,
        ThumbnailParams(quality=84).key_suffix,
    }
    assert len(keys) == 4
    assert ThumbnailParams().key_suffix == ThumbnailParams(300, "jpeg", 85).key_suffix
    assert len(ThumbnailParams().key_suffix) == 16


@pytest.mark.parametrize(
    "kwargs", [{"size": 0}, {"format": "GIF"}, {"quality": 0}, {"quality": 101}]
)
def test_bad_params_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ThumbnailParams(**kwargs)  # type: ignore[arg-type]


# --- async ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_render_async_runs_in_a_worker_thread() -> None:
    import anyio

    data = encode(make_image("RGB", 120, 60), ImageFormat.JPEG)
    engine = InlineEngine(limiter=anyio.CapacityLimiter(1))
    thumb = await render_thumbnail_async(
        data, DEFAULT, engine=engine, max_pixels=MAX_PIXELS, timeout=10
    )
    assert (thumb.width, thumb.height) == (120, 60)


@pytest.mark.anyio
async def test_a_decode_past_the_time_limit_is_abandoned_with_invalid_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def slow(*args: object, **kwargs: object) -> RenderedThumbnail:
        time.sleep(0.5)
        raise AssertionError("unreachable: the caller has gone")

    monkeypatch.setattr(engine_work, "render_thumbnail", slow)
    data = encode(make_image("RGB", 120, 60), ImageFormat.JPEG)
    started = time.monotonic()
    with pytest.raises(InvalidImage, match=r"decoding took longer than 0\.05 s"):
        await render_thumbnail_async(
            data, DEFAULT, engine=InlineEngine(), max_pixels=MAX_PIXELS, timeout=0.05
        )
    assert time.monotonic() - started < 0.4


@pytest.mark.parametrize(
    ("mode", "value", "expected"), [("I", 65535, 255), ("I", 100, 100), ("F", 0.5, 0)]
)
def test_wide_modes_are_scaled_to_8_bits(mode: str, value: float, expected: int) -> None:
    img = Image.new(mode, (4, 4), value)
    out = thumbnails._normalise(img, keep_alpha=False)
    assert out.mode == "L" and out.getpixel((0, 0)) == expected
