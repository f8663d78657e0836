"""Which colour profile a rendered image carries: the source's, unless it says nothing.

Browsers and viewers treat an image without a profile as sRGB, so an sRGB profile adds bytes
(half a kilobyte to a few) and no information; on a small variant it can be most of the file,
and a JPEG XL decoder attaches one to every image it decodes. A profile for another space
(Display P3, Adobe RGB, a camera's) is kept: dropping it would shift the colours.

"sRGB" is decided by what the profile does, not by its name: LittleCMS maps a set of test
colours (grey, red, green and blue ramps) through it to sRGB, and a profile whose every test
colour stays within :data:`TOLERANCE` levels is an sRGB one. The answer is remembered per
profile digest (not per profile: a worker must not keep many large profiles alive).
"""

from __future__ import annotations

import hashlib
import io

from PIL import Image, ImageChops, ImageCms

TOLERANCE = 2
"""Levels (of 255) a test colour may move for the profile still to count as sRGB: sRGB
profiles differ in how they write the curve (a formula, a 1024-entry table)."""
MAX_PROFILE_BYTES = 1024 * 1024
"""Profiles larger than this are kept as they are, unexamined."""
REMEMBERED = 256
"""How many answers :func:`is_srgb` keeps (by digest) before it starts afresh."""


def profile_to_keep(icc: object, mode: str) -> bytes | None:
    """The profile to write with pixels of ``mode``: ``icc`` when it fits the mode (not a CMYK
    profile on RGB) and is not an sRGB one, else None."""
    if not isinstance(icc, bytes) or len(icc) < 128:
        return None
    space = icc[16:20]
    if space == b"GRAY" and mode == "L":
        return icc
    if space != b"RGB " or mode not in ("RGB", "RGBA"):
        return None
    if len(icc) <= MAX_PROFILE_BYTES and is_srgb(icc):
        return None
    return icc


def _test_colours() -> Image.Image:
    ramp = Image.linear_gradient("L").resize((256, 1))
    black = Image.new("L", (256, 1))
    rows = [
        Image.merge("RGB", (ramp, ramp, ramp)),
        Image.merge("RGB", (ramp, black, black)),
        Image.merge("RGB", (black, ramp, black)),
        Image.merge("RGB", (black, black, ramp)),
    ]
    out = Image.new("RGB", (256, len(rows)))
    for y, row in enumerate(rows):
        out.paste(row, (0, y))
    return out


def is_srgb(icc: bytes) -> bool:
    """Whether the RGB profile ``icc`` maps colours as sRGB does (see the module's docstring).
    A profile LittleCMS cannot read is not sRGB."""
    digest = hashlib.sha256(icc).digest()
    known = _KNOWN.get(digest)
    if known is None:
        if len(_KNOWN) >= REMEMBERED:
            _KNOWN.clear()
        known = _KNOWN[digest] = _maps_as_srgb(icc)
    return known


def _maps_as_srgb(icc: bytes) -> bool:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(
            profile,
            _SRGB,
            "RGB",
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        )
        mapped = ImageCms.applyTransform(_TEST, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return False
    if mapped is None:
        return False
    extrema = ImageChops.difference(_TEST, mapped).getextrema()
    return all(int(high) <= TOLERANCE for _low, high in extrema)  # type: ignore[misc]


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_TEST = _test_colours()
_KNOWN: dict[bytes, bool] = {}
