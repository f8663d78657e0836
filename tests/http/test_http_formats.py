"""HEIC/HEIF, AVIF and JPEG XL uploads over the real app, from real encoders: the original
served byte for byte, a thumbnail and variants made, metadata stripped, header bombs refused,
and without the plugin a 400 naming the extra to install."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio.from_thread
import pillow_heif
import pillow_jxl  # noqa: F401  (registers the encoder used to make test files)
import pytest
from httpkit import Env, assert_error, open_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageStat

pytestmark = pytest.mark.anyio

pillow_heif.register_heif_opener(thumbnails=False)

FORMATS = [("HEIF", "image/heic", "photo.heic"), ("AVIF", "image/avif", "photo.avif")]
FORMATS.append(("JXL", "image/jxl", "photo.jxl"))


def photo(fmt: str, width: int = 480, height: int = 360, **options: object) -> bytes:
    """A photo-like image (gradient and noise) written by the format's real encoder."""
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.effect_noise((width, height), 30).convert("RGB")
    img = Image.blend(base, noise, 0.3)
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=80, **options)
    return buf.getvalue()


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"
    exif[0x0131] = "SecretSoftware"
    return exif.tobytes()


@pytest.mark.parametrize(("fmt", "mime", "name"), FORMATS)
async def test_upload_serves_the_original_and_makes_thumbnail_and_variants(
    env: Env, fmt: str, mime: str, name: str
) -> None:
    data = photo(fmt)
    token = await env.register()
    image = await env.uploaded(token, data, filename=name, content_type="application/octet-stream")
    assert image["content_type"] == mime
    assert (image["width"], image["height"]) == (480, 360)
    original = await env.client.get(str(image["url"]))
    assert original.status_code == 200
    assert original.content == data  # no metadata to strip: byte for byte
    assert original.headers["content-type"] == mime
    thumb = await env.client.get(str(image["thumbnail_url"]))
    assert thumb.status_code == 200, thumb.text
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert img.format in ("JPEG", "WEBP", "PNG")
        assert max(img.size) <= 360
    variant = await env.client.get(
        f"/api/v1/images/{image['id']}/variants/w320", headers={"Accept": "image/webp,*/*"}
    )
    assert variant.status_code == 200, variant.text
    assert variant.headers["content-type"] in ("image/webp", "image/avif")
    with Image.open(io.BytesIO(variant.content)) as img:
        assert img.size == (320, 240)
    plain = await env.client.get(f"/api/v1/images/{image['id']}/variants/w320")
    assert plain.status_code == 200
    assert plain.headers["content-type"] in ("image/jpeg", "image/png")


@pytest.mark.parametrize(("fmt", "mime", "name"), FORMATS)
async def test_a_small_original_stands_in_for_a_client_naming_its_format(
    env: Env, fmt: str, mime: str, name: str
) -> None:
    noise = Image.frombytes("RGB", (96, 64), bytes(range(256)) * 72)
    buf = io.BytesIO()
    noise.save(buf, format=fmt, quality=30)
    data = buf.getvalue()
    token = await env.register()
    image = await env.uploaded(token, data, filename=name, content_type=mime)
    url = f"/api/v1/images/{image['id']}/variants/w320"
    named = await env.client.get(url, headers={"Accept": f"{mime},image/webp,*/*"})
    assert named.status_code == 200, named.text
    assert (named.headers["content-type"], named.content) == (mime, data)
    assert named.headers["vary"] == "Accept"
    webp = await env.client.get(url, headers={"Accept": "image/webp,*/*"})
    assert webp.status_code == 200, webp.text
    assert webp.headers["content-type"] == "image/webp"  # the original's format is not taken


@pytest.mark.parametrize(("fmt", "mime", "name"), FORMATS)
async def test_exif_and_xmp_are_stripped_and_the_file_still_decodes(
    env: Env, fmt: str, mime: str, name: str
) -> None:
    data = photo(fmt, exif=_exif(), xmp=b"<x:xmpmeta>SecretXmpPayload</x:xmpmeta>")
    assert b"SecretCameraMaker" in data
    token = await env.register()
    image = await env.uploaded(token, data, filename=name, content_type=mime)
    stored = (await env.client.get(str(image["url"]))).content
    assert b"SecretCameraMaker" not in stored
    assert b"SecretXmpPayload" not in stored
    with Image.open(io.BytesIO(stored)) as img:
        img.load()
        assert img.size == (480, 360)
        assert 0x010F not in img.getexif()


def _heic_claiming(width: int, height: int) -> bytes:
    """A small real HEIC whose primary image's ispe property claims ``width`` x ``height``."""
    data = bytearray(photo("HEIF", 64, 64))
    at = data.find(b"ispe")
    assert at > 0
    struct.pack_into(">II", data, at + 8, width, height)
    return bytes(data)


async def test_a_heic_claiming_40_megapixels_in_a_few_kilobytes_is_refused(env: Env) -> None:
    bomb = _heic_claiming(8000, 5000)
    assert len(bomb) < 10_000
    token = await env.register()
    resp = await env.upload(token, bomb, "bomb.heic", "image/heic")
    detail = assert_error(resp, 400, "IMAGE_TOO_LARGE")
    assert detail["details"]["width"] == 8000


async def test_a_heic_whose_size_disagrees_with_its_pixels_is_refused(env: Env) -> None:
    token = await env.register()
    resp = await env.upload(token, _heic_claiming(64, 32), "liar.heic", "image/heic")
    assert_error(resp, 400, "INVALID_IMAGE")


async def test_a_truncated_heic_is_refused(env: Env) -> None:
    data = photo("HEIF")
    token = await env.register()
    resp = await env.upload(token, data[: len(data) // 2], "cut.heic", "image/heic")
    assert_error(resp, 400, "INVALID_IMAGE")


_WITHOUT = """
import sys
sys.modules[{module!r}] = None  # the extra is not installed
from chitram_core.errors import InvalidFileFormat
from chitram_core.images.codecs import format_names
from chitram_core.images.formats import probe
data = sys.stdin.buffer.read()
assert {name!r} not in format_names(), format_names()
try:
    probe(data)
except InvalidFileFormat as exc:
    print(exc.code, exc.details.get("extra"), exc.message)
"""


@pytest.mark.parametrize(
    ("fmt", "module", "name", "extra"),
    [("HEIF", "pillow_heif", "heif", "heif"), ("JXL", "pillow_jxl", "jxl", "jxl")],
)
def test_without_the_extra_the_upload_is_refused_naming_it(
    fmt: str, module: str, name: str, extra: str
) -> None:
    script = textwrap.dedent(_WITHOUT.format(module=module, name=name))
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=photo(fmt, 64, 64),
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode()
    code, named, message = out.strip().split(" ", 2)
    assert (code, named) == ("INVALID_FILE_FORMAT", extra)
    assert f"chitram[{extra}]" in message


# --- property: any generated image of each format round-trips within a bounded error ---------

ROUND_TRIP = settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def smooth_images(draw: st.DrawFn) -> Image.Image:
    """A photo-like image: a two-colour gradient at a drawn size (lossy codecs keep it close)."""
    width, height = draw(st.integers(16, 200)), draw(st.integers(16, 200))
    a = draw(st.tuples(*[st.integers(0, 255)] * 3))
    b = draw(st.tuples(*[st.integers(0, 255)] * 3))
    mask = Image.linear_gradient("L").resize((width, height))
    return Image.composite(
        Image.new("RGB", (width, height), a), Image.new("RGB", (width, height), b), mask
    )


def _mean_error(one: Image.Image, two: Image.Image) -> float:
    diff = ImageChops.difference(one.convert("RGB"), two.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


@pytest.mark.parametrize(("fmt", "mime", "name"), FORMATS)
def test_generated_images_round_trip_through_upload_and_variant(
    tmp_path: Path, fmt: str, mime: str, name: str
) -> None:
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(open_env(tmp_path)) as env,
    ):
        token = portal.call(env.register)

        @ROUND_TRIP
        @given(smooth_images())
        def round_trip(img: Image.Image) -> None:
            buf = io.BytesIO()
            img.save(buf, format=fmt, quality=90)
            data = buf.getvalue()
            image = portal.call(lambda: env.uploaded(token, data, filename=name))
            assert (image["width"], image["height"]) == img.size
            assert image["content_type"] == mime
            original = portal.call(env.client.get, str(image["url"]))
            assert original.content == data
            # w320 fits the width: a variant the original's size, for a client that takes the
            # original's format (as a browser decoding it says) and WebP.
            variant = portal.call(
                lambda: env.client.get(
                    f"/api/v1/images/{image['id']}/variants/w320",
                    headers={"Accept": f"{mime},image/webp"},
                )
            )
            assert variant.status_code == 200, variant.text
            assert variant.headers["content-type"] in (mime, "image/webp")
            # A variant that needs no resize is never larger than the original it came from.
            assert len(variant.content) <= len(data)
            with Image.open(io.BytesIO(variant.content)) as out:
                expected = img.resize(out.size, Image.Resampling.LANCZOS)
                assert _mean_error(out, expected) < 12

        round_trip()


async def test_health_lists_the_formats_this_installation_decodes(env: Env) -> None:
    body = (await env.client.get("/health")).json()
    assert body["image_formats"] == ["jpeg", "png", "gif", "webp", "heif", "avif", "jxl"]


def test_version_lists_the_formats() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chitram_falcon", "--version"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode()
    assert "image formats: jpeg, png, gif, webp, heif, avif, jxl" in out


def test_version_without_the_heif_extra_leaves_heif_out() -> None:
    script = (
        "import sys; sys.modules['pillow_heif'] = None; sys.argv = ['chitram', '--version']\n"
        "from chitram_falcon.cli import main\nmain()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=120
    ).stdout.decode()
    assert "image formats: jpeg, png, gif, webp, avif, jxl" in out
