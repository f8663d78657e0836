"""Thumbnails: bounded, orientation-correct, any Pillow mode; pure functions the engine runs.

Decoding is the expensive and dangerous part, so it is kept small: the pixel count is checked
against ``max_pixels`` for every call (Pillow's process-global ``MAX_IMAGE_PIXELS`` stays as a
second line, it is not changed from here), only the accepted, installed formats are ever opened, and
JPEG is decoded with ``draft()`` straight to 1/2, 1/4 or 1/8 scale (shrink on load: the IDCT
produces fewer pixels, so the big image is never in memory). The rest is ``thumbnail()`` with a
reducing gap, which uses ``reduce()`` before the final Lanczos resample.

Output modes: JPEG is always ``RGB`` or ``L`` with transparency flattened on white; PNG and WebP
keep an alpha channel when the source has one.
"""

from __future__ import annotations

import hashlib
import io
from typing import IO, Any

import attrs
from PIL import Image

from chitram_core.errors import ChitramError, InvalidImage
from chitram_core.images.codecs import PILLOW_FORMATS
from chitram_core.images.formats import PILLOW_ERRORS, _reason
from chitram_core.images.profiles import profile_to_keep

THUMBNAIL_FORMATS = ("JPEG", "WEBP", "PNG")
ALGORITHM_VERSION = 1
"""Bump when the rendering changes visibly: it is part of :attr:`ThumbnailParams.key_suffix`."""

_INPUT_FORMATS = PILLOW_FORMATS
_CONTENT_TYPES = {"JPEG": "image/jpeg", "WEBP": "image/webp", "PNG": "image/png"}


def _upper(value: str) -> str:
    return str(value).upper()


def _in_range(low: int, high: int) -> Any:
    return [attrs.validators.ge(low), attrs.validators.le(high)]


@attrs.frozen
class ThumbnailParams:
    """How thumbnails are made; equal params give equal storage keys."""

    size: int = attrs.field(default=300, validator=_in_range(1, 4096))
    format: str = attrs.field(
        default="JPEG",
        converter=_upper,
        validator=attrs.validators.in_(THUMBNAIL_FORMATS),
    )
    quality: int = attrs.field(default=85, validator=_in_range(1, 100))

    @property
    def key_suffix(self) -> str:
        """A short stable hash of the parameters (and the algorithm version)."""
        text = f"v{ALGORITHM_VERSION}:{self.size}:{self.format}:{self.quality}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.format]


@attrs.frozen
class RenderedThumbnail:
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    width: int
    height: int
    content_type: str


Source = bytes | IO[bytes]


def render_thumbnail(
    source: Source, params: ThumbnailParams, *, max_pixels: int, draft: bool = True
) -> RenderedThumbnail:
    """Render a thumbnail fitting a ``params.size`` box; SYNC: the image engine runs it.

    ``draft=False`` disables JPEG shrink-on-load (for the benchmark's comparison only).
    Any failure is :class:`InvalidImage` with the reason.
    """
    fileobj: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        return _render(fileobj, params, max_pixels, draft)
    except ChitramError as exc:
        if isinstance(exc, InvalidImage):
            raise
        raise InvalidImage(exc.message, **exc.details) from None
    except PILLOW_ERRORS as exc:
        reason = _reason(exc)
        raise InvalidImage(f"Cannot make a thumbnail: {reason}", reason=reason) from None


def _render(
    fileobj: IO[bytes], params: ThumbnailParams, max_pixels: int, draft: bool
) -> RenderedThumbnail:
    with Image.open(fileobj, formats=_INPUT_FORMATS) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise InvalidImage(
                f"The image has {width * height} pixels, more than the limit of {max_pixels}",
                width=width,
                height=height,
                max_pixels=max_pixels,
            )
        orientation = img.getexif().get(0x0112, 1)  # read before any resize drops the info
        icc = img.info.get("icc_profile")
        if draft:
            shrink_on_load(img, params)
        else:
            img.load()
        return encode(finish(img, params, orientation), params, icc)


def shrink_on_load(img: Image.Image, params: ThumbnailParams) -> None:
    """Ask a JPEG's decoder for the smallest 1/1..1/8 scale still covering the thumbnail box
    (nothing for other formats); the decode itself happens at ``load()``."""
    if img.format in ("JPEG", "MPO"):
        box = _fit(img.width, img.height, params.size)
        img.draft(img.mode if img.mode in ("RGB", "L") else None, box)


def finish(img: Image.Image, params: ThumbnailParams, orientation: object) -> Image.Image:
    """The thumbnail's pixels from an opened (or already decoded) image, oriented and in an
    output mode; ``img`` is resized in place and may be what is returned."""
    img.thumbnail((params.size, params.size), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return _orient(_normalise(img, keep_alpha=params.format != "JPEG"), orientation)


def _fit(width: int, height: int, size: int) -> tuple[int, int]:
    scale = min(size / width, size / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orient(img: Image.Image, orientation: object) -> Image.Image:
    """What ``ImageOps.exif_transpose`` does, applied after the resize (to fewer pixels)."""
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return img.transpose(method) if method is not None else img


def _normalise(img: Image.Image, *, keep_alpha: bool) -> Image.Image:
    """Any Pillow mode to ``RGB``/``L`` (or ``RGBA`` when keeping alpha)."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit samples span 0..65535: scale to 0..255 (a plain convert would clip to white).
        # Mode "I" has no declared depth, so it is scaled only when its values need it.
        top = 65535
        if mode == "I":
            high = img.getextrema()[1]
            top = 65535 if isinstance(high, int | float) and high > 255 else 255
        else:
            img = img.convert("I")
        img = img.point(lambda v: v * (255 / top)).convert("L")
    elif mode == "F":
        low, high = img.getextrema()
        lo, hi = float(low), float(high)  # type: ignore[arg-type]
        span = (hi - lo) or 1.0
        img = img.point(lambda v: (v - lo) * (255 / span)).convert("L")
    elif mode == "1":
        img = img.convert("L")
    elif mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    if img.mode == "RGBA" and not keep_alpha:
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        img = background
    return img


def encode(img: Image.Image, params: ThumbnailParams, icc: object) -> RenderedThumbnail:
    """Encode :func:`finish`'s pixels as ``params`` say (with ``icc`` unless it is sRGB or does
    not fit the mode: :func:`~chitram_core.images.profiles.profile_to_keep`)."""
    options: dict[str, Any] = {}
    # None too: some encoders (PNG, AVIF) would otherwise write the profile left in img.info.
    options["icc_profile"] = profile_to_keep(icc, img.mode)
    if params.format == "JPEG":
        options.update(quality=params.quality, optimize=True)
    elif params.format == "WEBP":
        options.update(quality=params.quality, method=4)
    buf = io.BytesIO()
    img.save(buf, format=params.format, **options)
    return RenderedThumbnail(buf.getvalue(), img.width, img.height, params.content_type)


__all__ = [
    "RenderedThumbnail",
    "ThumbnailParams",
    "render_thumbnail",
]
