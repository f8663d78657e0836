"""Hypothesis strategies for image bytes: valid, truncated, hostile, and ways to chunk them.

For plugin authors and for our own tests. Images are small (at most ``max_side`` pixels a side)
and made by Pillow from a drawn seed, so generation stays fast and examples still shrink.

- :func:`valid_images` draws :class:`SampleImage` values (bytes plus what they are).
- :func:`truncated_images` draws bytes of a valid image cut short.
- :func:`hostile_images` draws bytes that start like an image and are not one: random tails
  behind real magic, polyglots, headers claiming huge sizes, garbage.
- :func:`chunkings` splits given bytes into a list of chunks, zero-length ones included.
"""

from __future__ import annotations

import functools
import io
import itertools
import random
import struct
import zlib

import attrs
from hypothesis import strategies as st
from PIL import Image

from chitram_core.images.codecs import available_formats
from chitram_core.images.formats import PNG_SIGNATURE, ImageFormat

INSTALLED: tuple[ImageFormat, ...] = tuple(available_formats())
"""The formats this installation decodes (HEIF and JPEG XL with their extras): the default
of the strategies below."""

__all__ = [
    "SampleImage",
    "chunkings",
    "encode",
    "gif_with_size",
    "gps_exif",
    "hostile_images",
    "huge_claim_images",
    "jpeg_with_size",
    "make_image",
    "png_bomb",
    "png_with_size",
    "polyglot_png",
    "truncated_images",
    "valid_images",
    "webp_with_size",
    "with_metadata",
]

# Modes each format can store, as Pillow writes them.
MODES: dict[ImageFormat, tuple[str, ...]] = {
    ImageFormat.JPEG: ("L", "RGB", "CMYK"),
    ImageFormat.PNG: ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
    ImageFormat.GIF: ("P", "L"),
    ImageFormat.WEBP: ("RGB", "RGBA"),
    ImageFormat.HEIF: ("RGB", "RGBA"),
    ImageFormat.AVIF: ("RGB", "RGBA"),
    ImageFormat.JXL: ("L", "RGB", "RGBA"),
}


@attrs.frozen
class SampleImage:
    """Bytes of a real image and what they hold."""

    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    format: ImageFormat
    width: int
    height: int
    mode: str


def make_image(mode: str, width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic noisy image in ``mode`` (noise keeps encoders honest)."""
    rng = random.Random(seed)
    if mode == "P":
        img = Image.frombytes("P", (width, height), rng.randbytes(width * height))
        img.putpalette(rng.randbytes(768))
        return img
    if mode == "I;16":
        return Image.frombytes("I;16", (width, height), rng.randbytes(width * height * 2))
    if mode == "1":
        return Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("1")
    bands = Image.getmodebands(mode)
    return Image.frombytes(mode, (width, height), rng.randbytes(width * height * bands))


def encode(img: Image.Image, fmt: ImageFormat, **options: object) -> bytes:
    buf = io.BytesIO()
    if fmt is ImageFormat.WEBP:
        options.setdefault("lossless", True)
    img.save(buf, format=fmt.pillow_name, **options)
    return buf.getvalue()


@st.composite
def valid_images(
    draw: st.DrawFn,
    formats: tuple[ImageFormat, ...] = INSTALLED,
    max_side: int = 24,
) -> SampleImage:
    """Small real images in every supported format and mode."""
    fmt = draw(st.sampled_from(formats))
    mode = draw(st.sampled_from(MODES[fmt]))
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**32 - 1))
    img = make_image(mode, width, height, seed)
    options: dict[str, object] = {}
    if fmt is ImageFormat.JPEG:
        options["quality"] = draw(st.sampled_from([50, 90]))
        options["progressive"] = draw(st.booleans())
    if fmt is ImageFormat.PNG and mode == "P" and draw(st.booleans()):
        options["transparency"] = 0
    if fmt in (ImageFormat.HEIF, ImageFormat.AVIF, ImageFormat.JXL):
        options["quality"] = draw(st.sampled_from([60, 90]))
    return SampleImage(encode(img, fmt, **options), fmt, width, height, mode)


@st.composite
def truncated_images(draw: st.DrawFn, max_side: int = 24) -> bytes:
    """A valid image cut at some byte before its end."""
    sample = draw(valid_images(max_side=max_side))
    cut = draw(st.integers(1, len(sample.data) - 1))
    return sample.data[:cut]


def png_with_size(width: int, height: int, body: bytes = b"") -> bytes:
    """A PNG signature and a correct IHDR claiming ``width`` x ``height``, then ``body``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + body


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def polyglot_png(html: bytes = b"<html><script>alert(1)</script></html>") -> bytes:
    """A valid PNG signature and IHDR followed by HTML: must never be accepted."""
    return png_with_size(1, 1, html)


@functools.lru_cache(maxsize=8)
def png_bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """A small, well-formed grey PNG whose pixels would need ``width * height`` bytes.

    ``rows`` limits how many rows of (zero) data are actually compressed in, to keep building
    it cheap; the default compresses them all (roughly 0.4 s per 10^8 pixels; cached).
    """
    rows = height if rows is None else rows
    comp = zlib.compressobj(9)
    remaining = (width + 1) * rows  # filter byte 0 and zero samples: one long run of zeros
    block = b"\x00" * min(remaining, 16 * 1024 * 1024)
    parts = []
    while remaining:
        parts.append(comp.compress(block[:remaining]))
        remaining -= min(remaining, len(block))
    parts.append(comp.flush())
    idat = b"".join(parts)
    return png_with_size(width, height, _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def jpeg_with_size(width: int, height: int) -> bytes:
    """A JPEG whose frame header claims ``width`` x ``height`` with no real data behind it."""
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def gif_with_size(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b";"


def webp_with_size(width: int, height: int) -> bytes:
    vp8x = (
        b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    )
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def huge_claim_images() -> st.SearchStrategy[bytes]:
    """Headers claiming 1x100000, 50000x50000 and other sizes past the default limits."""
    sizes = st.sampled_from([(1, 100_000), (50_000, 50_000), (12_001, 1), (10_000, 10_000)])
    makers = st.sampled_from([png_with_size, jpeg_with_size, gif_with_size, webp_with_size])
    return st.builds(
        lambda size, maker: maker(min(size[0], _cap(maker)), min(size[1], _cap(maker))),
        sizes,
        makers,
    )


def _cap(maker: object) -> int:
    # GIF and JPEG store 16-bit sides, WebP 14 bits (VP8/VP8L) or 24 bits (VP8X).
    return 65_535 if maker in (gif_with_size, jpeg_with_size) else 10**6


_MAGICS = [
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0",
    PNG_SIGNATURE,
    PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR",
    b"GIF89a",
    b"GIF87a",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"RIFF\xff\xff\xff\x7fWEBPVP8 ",
    b"RIFF\x20\x00\x00\x00WEBPVP8L",
    b"RIFF\x20\x00\x00\x00WEBPVP8X",
]


def hostile_images() -> st.SearchStrategy[bytes]:
    """Bytes that start like an image and are not a valid one (or are dangerously large)."""
    magic_tail = st.builds(
        lambda magic, tail: magic + tail, st.sampled_from(_MAGICS), st.binary(max_size=256)
    )
    polyglots = st.builds(polyglot_png, st.binary(max_size=64).map(lambda b: b"<html>" + b))
    return st.one_of(
        magic_tail,
        polyglots,
        huge_claim_images(),
        truncated_images(),
        st.binary(max_size=256),
    )


XMP_PACKET = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    b'exif:GPSLatitude="51,30.0N"/></rdf:RDF></x:xmpmeta>'
)
GPS_IFD = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}


def srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def gps_exif(orientation: int | None = None) -> Image.Exif:
    """EXIF with a camera make, GPS coordinates and (optionally) an orientation."""
    exif = Image.Exif()
    exif[0x010F] = "ChitramCam"
    if orientation is not None:
        exif[0x0112] = orientation
    exif[0x8825] = GPS_IFD
    return exif


def with_metadata(
    mode: str,
    width: int,
    height: int,
    fmt: ImageFormat,
    *,
    orientation: int | None = 6,
    seed: int = 0,
    icc: bool = True,
    trailer: bytes = b"",
) -> bytes:
    """An image carrying GPS EXIF, XMP, text or comments, an ICC profile and an orientation.

    GIF gets a comment and an XMP application extension (it has no EXIF or ICC here).
    ``trailer`` is appended after the end of the image (polyglot payloads).
    """
    img = make_image(mode, width, height, seed)
    options: dict[str, object] = {}
    if icc and mode in ("RGB", "RGBA"):
        options["icc_profile"] = srgb_profile()
    if fmt is ImageFormat.JPEG:
        options.update(exif=gps_exif(orientation), xmp=XMP_PACKET, comment=b"shot at home")
        data = encode(img, fmt, **options)
        photoshop = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x05\x1c\x02\x00\x00\x00"
        app13 = b"\xff\xed" + struct.pack(">H", len(photoshop) + 2) + photoshop
        data = data[:2] + app13 + data[2:]
    elif fmt is ImageFormat.PNG:
        from PIL import PngImagePlugin

        text = PngImagePlugin.PngInfo()
        text.add_text("Comment", "shot at home")
        text.add_text("Location", "51.5N 0.1W", zip=True)
        text.add_itxt("XML:com.adobe.xmp", XMP_PACKET.decode())
        options.update(exif=gps_exif(orientation), pnginfo=text)
        data = encode(img, fmt, **options)
    elif fmt in (ImageFormat.WEBP, ImageFormat.HEIF, ImageFormat.AVIF, ImageFormat.JXL):
        options.update(exif=gps_exif(orientation).tobytes(), xmp=XMP_PACKET)
        data = encode(img, fmt, **options)
    else:
        data = encode(img, fmt, comment=b"shot at home")
        magic_trailer = bytes([1, *range(255, -1, -1), 0])
        xmp_ext = b"!\xff\x0bXMP DataXMP" + XMP_PACKET + magic_trailer
        data = data[:-1] + xmp_ext + data[-1:]
    return data + trailer


@st.composite
def chunkings(draw: st.DrawFn, data: bytes, max_chunks: int = 24) -> list[bytes]:
    """``data`` split at random points; repeated points give zero-length chunks."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_chunks)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]
