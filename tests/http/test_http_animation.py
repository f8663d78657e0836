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
        ("AVIF", "image/avif", "a.avif"),
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
        img.seek(1)
        img.load()
        assert img.info["duration"] == 40  # each frame keeps its time
    still = await env.client.get(url)  # no WebP accepted: the first frame
    assert still.status_code == 200
    with Image.open(io.BytesIO(still.content)) as img:
        assert getattr(img, "n_frames", 1) == 1


# --- image sequences: animated AVIF and HEIF, animated JPEG XL ---------------------------------


def _box(data: bytes | bytearray, path: list[bytes], start: int = 0, end: int | None = None) -> int:
    """The offset of the box at ``path`` (each level's first match) in an ISO base media file."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack_from(">I4s", data, pos)
        if typ == path[0]:
            if len(path) == 1:
                return pos
            return _box(data, path[1:], pos + 8, pos + size)
        pos += size
    raise AssertionError(f"no {path[0]!r} box")


def avif_sequence(count: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """An animated AVIF written by Pillow's AVIF encoder (libavif)."""
    return animation("AVIF", count, size)


def avif_declaring(frames: int | None = None, size: tuple[int, int] | None = None) -> bytes:
    """A real three-frame AVIF sequence whose track claims ``frames`` samples (``stsz``) or a
    frame of ``size`` pixels (``tkhd``): the header lies, the frames stay small."""
    data = bytearray(avif_sequence(3))
    track = [b"moov", b"trak"]
    if frames is not None:
        at = _box(data, [*track, b"mdia", b"minf", b"stbl", b"stsz"])
        struct.pack_into(">I", data, at + 16, frames)
    if size is not None:
        at = _box(data, [*track, b"tkhd"]) + 8
        at += 88 if data[at] == 1 else 76  # the width and height, 16.16 fixed point
        struct.pack_into(">II", data, at, size[0] << 16, size[1] << 16)
    return bytes(data)


def as_heif(avif: bytes) -> bytes:
    """The same sequence with HEIF brands: pillow-heif writes no sequences, so the container
    comes from the AVIF encoder (the frame budget reads the same boxes in both)."""
    ftyp = _box(avif, [b"ftyp"])
    (size,) = struct.unpack_from(">I", avif, ftyp)
    brands = avif[ftyp + 8 : ftyp + size].replace(b"avis", b"msf1").replace(b"avif", b"heic")
    return avif[: ftyp + 8] + brands + avif[ftyp + size :]


async def test_an_avif_sequence_is_kept_with_a_first_frame_thumbnail(env: Env) -> None:
    data = avif_sequence(12)
    token = await env.register()
    image = await env.uploaded(token, data, filename="a.avif", content_type="image/avif")
    stored = (await env.client.get(str(image["url"]))).content
    with Image.open(io.BytesIO(stored)) as img:
        assert img.n_frames == 12
    thumb = await env.client.get(str(image["thumbnail_url"]))
    assert thumb.status_code == 200, thumb.text


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
        pytest.param(avif_declaring(frames=10_000), "many.avif", "max_frames", id="avif-10000"),
        pytest.param(
            as_heif(avif_declaring(frames=10_000)), "many.heic", "max_frames", id="heif-10000"
        ),
        pytest.param(
            avif_declaring(size=(10_000, 8_000)),
            "huge.avif",
            "max_animation_pixels",
            id="avif-80-megapixels-a-frame",
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


async def test_the_frame_budget_of_an_avif_sequence_follows_the_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with open_env(tmp_path, max_frames=20) as env:
        token = await env.register()
        ok = await env.upload(token, avif_sequence(20), "ok.avif", "image/avif")
        assert ok.status_code == 201, ok.text
        for data, name in ((avif_sequence(21), "no.avif"), (as_heif(avif_sequence(21)), "no.heic")):
            resp = await env.upload(token, data, name, "application/octet-stream")
            detail = assert_error(resp, 400, "IMAGE_TOO_LARGE")
            assert detail["details"]["max_frames"] == 20


class _BitWriter:
    """JPEG XL's bit order: least significant bit first."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, count: int) -> _BitWriter:
        self.bits.extend((value >> i) & 1 for i in range(count))
        return self

    def bytes(self, length: int = 64) -> bytes:
        padded = self.bits + [0] * (8 * length - len(self.bits))
        return bytes(
            sum(b << i for i, b in enumerate(padded[k : k + 8])) for k in range(0, len(padded), 8)
        )


def jxl_codestream(*, animated: bool, preview: bool = False) -> bytes:
    """The start of a 64x64 JPEG XL codestream, written by hand (no encoder we have writes
    animations): the size header, then image metadata up to the animation header."""
    w = _BitWriter().put(1, 1).put(7, 5).put(1, 3)  # small, (7 + 1) x 8 rows, square
    w.put(0, 1).put(1, 1).put(0, 3)  # not all default, extra fields, orientation 1
    w.put(0, 1)  # no intrinsic size
    w.put(int(preview), 1)
    if preview:
        w.put(1, 1).put(0, 2).put(1, 3)  # div8, 16 x 8 rows, square
    w.put(int(animated), 1)
    if animated:
        w.put(0, 2).put(0, 2).put(0, 2).put(0, 1)  # 100 ticks/s, loop forever, no timecodes
    return b"\xff\x0a" + w.bytes()


def jxl_container(code: bytes) -> bytes:
    signature = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
    ftyp = struct.pack(">I4s4sI4s", 20, b"ftyp", b"jxl ", 0, b"jxl ")
    return signature + ftyp + struct.pack(">I4s", 8 + len(code), b"jxlc") + code


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jxl_codestream(animated=True), id="codestream"),
        pytest.param(jxl_codestream(animated=True, preview=True), id="with-a-preview"),
        pytest.param(jxl_container(jxl_codestream(animated=True)), id="container"),
    ],
)
async def test_an_animated_jpeg_xl_is_refused_saying_why(env: Env, data: bytes) -> None:
    token = await env.register()
    resp = await env.upload(token, data, "moving.jxl", "image/jxl")
    detail = assert_error(resp, 400, "INVALID_IMAGE")
    assert "Animated JPEG XL" in detail["message"]


def test_still_jpeg_xl_files_are_not_taken_for_animations() -> None:
    import pillow_jxl  # noqa: F401  (registers the encoder)

    from chitram_core.images.scan.jxl import animated

    assert not animated(jxl_codestream(animated=False, preview=True))
    exif = Image.Exif()
    exif[0x0112] = 6
    for size in ((1, 1), (64, 48), (1000, 3), (4000, 3000)):
        for options in ({}, {"exif": exif.tobytes()}):
            buf = io.BytesIO()
            Image.new("RGB", size, "teal").save(buf, "JXL", **options)
            data = buf.getvalue()
            if not data.startswith(b"\xff\x0a"):  # a container: the first codestream part
                at = data.find(b"jxlc")
                data = data[at + 4 :] if at > 0 else data[data.index(b"jxlp") + 8 :]
            assert not animated(data), (size, options)
