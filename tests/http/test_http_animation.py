"""Animated GIF, WebP and PNG: kept as uploaded, first-frame thumbnails, and the frame budget
(frames, and width x height x frames) counted from the frame headers before any decode."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from httpkit import Env, assert_error, open_env
from PIL import Image

pytestmark = pytest.mark.anyio


def _frames(count: int, size: tuple[int, int] = (64, 48)) -> list[Image.Image]:
    return [
        Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        for i in range(count)
    ]


def animation(fmt: str, count: int, size: tuple[int, int] = (64, 48)) -> bytes:
    frames = _frames(count, size)
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=40, loop=0)
    return buf.getvalue()


def gif_with_frames(count: int, screen: tuple[int, int] | None = None) -> bytes:
    """A GIF of ``count`` 1x1 frames (one real frame's bytes repeated), on a logical screen of
    ``screen`` pixels when given: no encoder would take this long to write one."""
    data = animation("GIF", 2, (1, 1))
    img = Image.open(io.BytesIO(data))
    assert img.n_frames == 2
    start = data.index(b"\x2c")  # the first image descriptor
    end = data.rindex(b"\x3b")
    header = bytearray(data[:start])
    if screen is not None:
        struct.pack_into("<HH", header, 6, *screen)
    frame = data[start:end]
    return bytes(header) + frame * count + b"\x3b"


def webp_with_frames(count: int) -> bytes:
    """An animated WebP whose one ANMF frame chunk is repeated ``count`` times."""
    data = animation("WEBP", 2, (16, 16))
    pos, chunks = 12, []
    while pos < len(data):
        ctype = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        chunks.append((ctype, data[pos : pos + 8 + size + (size & 1)]))
        pos += 8 + size + (size & 1)
    head = b"".join(c for t, c in chunks if t in (b"VP8X", b"ANIM"))
    frame = next(c for t, c in chunks if t == b"ANMF")
    body = b"WEBP" + head + frame * count
    return b"RIFF" + struct.pack("<I", len(body)) + body


def apng_declaring(frames: int) -> bytes:
    """A real two-frame APNG whose acTL chunk declares ``frames`` frames."""
    data = bytearray(animation("PNG", 2))
    at = data.index(b"acTL")
    struct.pack_into(">I", data, at + 4, frames)
    struct.pack_into(">I", data, at + 12, zlib.crc32(bytes(data[at : at + 12])))
    return bytes(data)


@pytest.mark.parametrize(
    ("fmt", "mime", "name"),
    [
        ("GIF", "image/gif", "a.gif"),
        ("WEBP", "image/webp", "a.webp"),
        ("PNG", "image/png", "a.png"),
    ],
)
async def test_an_animation_is_kept_and_its_thumbnail_is_the_first_frame(
    env: Env, fmt: str, mime: str, name: str
) -> None:
    data = animation(fmt, 50)
    token = await env.register()
    image = await env.uploaded(token, data, filename=name, content_type=mime)
    stored = (await env.client.get(str(image["url"]))).content
    with Image.open(io.BytesIO(stored)) as img:
        assert getattr(img, "n_frames", 1) == 50
    thumb = await env.client.get(str(image["thumbnail_url"]))
    assert thumb.status_code == 200
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert getattr(img, "n_frames", 1) == 1
        first = _frames(1, (1, 1))[0].getpixel((0, 0))
        got = img.convert("RGB").getpixel((img.width // 2, img.height // 2))
        assert all(abs(a - b) <= 12 for a, b in zip(got, first, strict=True)), (got, first)


@pytest.mark.parametrize(
    ("data", "name", "what"),
    [
        pytest.param(gif_with_frames(10_000), "many.gif", "max_frames", id="gif-10000-frames"),
        pytest.param(webp_with_frames(10_000), "many.webp", "max_frames", id="webp-10000-frames"),
        pytest.param(apng_declaring(10_000), "many.png", "max_frames", id="apng-10000-frames"),
        pytest.param(
            gif_with_frames(6, screen=(8000, 5000)),
            "huge.gif",
            "max_animation_pixels",
            id="gif-40-megapixels-a-frame",
        ),
    ],
)
async def test_an_animation_past_the_frame_budget_is_refused(
    env: Env, data: bytes, name: str, what: str
) -> None:
    token = await env.register()
    resp = await env.upload(token, data, name, "application/octet-stream")
    detail = assert_error(resp, 400, "IMAGE_TOO_LARGE")
    assert what in detail["details"]


async def test_the_frame_budget_follows_the_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with open_env(tmp_path, max_frames=20) as env:
        token = await env.register()
        assert (
            await env.upload(token, animation("GIF", 20), "ok.gif", "image/gif")
        ).status_code == 201
        resp = await env.upload(token, animation("GIF", 21), "no.gif", "image/gif")
        detail = assert_error(resp, 400, "IMAGE_TOO_LARGE")
        assert detail["details"]["max_frames"] == 20


@pytest.mark.parametrize(
    ("fmt", "mime", "name"),
    [
        ("GIF", "image/gif", "a.gif"),
        ("WEBP", "image/webp", "a.webp"),
        ("PNG", "image/png", "a.png"),
    ],
)
async def test_a_webp_variant_of_an_animation_stays_animated(
    env: Env, fmt: str, mime: str, name: str
) -> None:
    token = await env.register()
    image = await env.uploaded(
        token, animation(fmt, 50, (200, 100)), filename=name, content_type=mime
    )
    url = f"/api/v1/images/{image['id']}/variants/w320"
    moving = await env.client.get(url, headers={"Accept": "image/webp,*/*"})
    assert moving.status_code == 200, moving.text
    assert moving.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(moving.content)) as img:
        assert img.n_frames == 50
        assert img.size == (200, 100)
    still = await env.client.get(url)  # no WebP accepted: the first frame
    assert still.status_code == 200
    with Image.open(io.BytesIO(still.content)) as img:
        assert getattr(img, "n_frames", 1) == 1
