"""Placeholders shown while an image loads: a BlurHash string and the dominant colour.

Both come from a tiny decode (a JPEG's 1/8 draft when it is large enough), computed at upload
in the engine's worker processes (pure functions, no I/O).
"""

from __future__ import annotations

import io

import attrs
from PIL import Image

from chitram_core.errors import ChitramError, InvalidImage
from chitram_core.images import blurhash
from chitram_core.images.codecs import PILLOW_FORMATS
from chitram_core.images.formats import PILLOW_ERRORS, _reason
from chitram_core.images.thumbnails import _normalise, _orient

_INPUT_FORMATS = PILLOW_FORMATS

PLACEHOLDER_SIDE = 32
BLURHASH_COMPONENTS = (4, 3)


@attrs.frozen
class Placeholders:
    blurhash: str
    dominant_color: str


def compute_placeholders(source: bytes, *, max_pixels: int) -> Placeholders:
    """BlurHash (4x3 components) and the dominant colour from a tiny draft decode; SYNC."""
    try:
        with Image.open(io.BytesIO(source), formats=_INPUT_FORMATS) as img:
            if img.width * img.height > max_pixels:
                raise InvalidImage("The image has too many pixels", max_pixels=max_pixels)
            box = (PLACEHOLDER_SIDE * 2, PLACEHOLDER_SIDE * 2)
            if img.format in ("JPEG", "MPO"):
                img.draft("RGB", box)
            return placeholders_of(img)
    except ChitramError:
        raise
    except PILLOW_ERRORS as exc:
        raise InvalidImage(f"Cannot compute placeholders: {_reason(exc)}") from None


def placeholders_of(img: Image.Image) -> Placeholders:
    """:func:`compute_placeholders` from an image already opened (and, for a JPEG, set to the
    draft scale that function would choose); SYNC."""
    orientation = img.getexif().get(0x0112, 1)
    small = _normalise(img, keep_alpha=False)
    small.thumbnail((PLACEHOLDER_SIDE, PLACEHOLDER_SIDE), Image.Resampling.BOX)
    small = _orient(small.convert("RGB"), orientation)
    return Placeholders(blurhash=_blurhash(small), dominant_color=dominant_color(small))


def placeholders_of_pixels(img: Image.Image) -> Placeholders:
    """The placeholders of pixels already oriented and flattened (``RGB`` or ``L``), such as a
    thumbnail's: reduced to the placeholder box as :func:`placeholders_of` does; ``img`` is not
    changed. SYNC."""
    small = img.convert("RGB")  # a copy, also when it is RGB already
    small.thumbnail((PLACEHOLDER_SIDE, PLACEHOLDER_SIDE), Image.Resampling.BOX)
    return Placeholders(blurhash=_blurhash(small), dominant_color=dominant_color(small))


def shares_verify_draft(width: int, height: int) -> bool:
    """Whether the 1/8 draft that JPEG verification decodes is the one
    :func:`compute_placeholders` would decode: both sides at least 8 x its draft box, so both
    ask libjpeg for its largest reduction (``JpegImageFile.draft`` leaves the mode alone for
    ``None`` and ``"RGB"`` alike)."""
    return min(width, height) >= 8 * PLACEHOLDER_SIDE * 2


def _blurhash(img: Image.Image) -> str:
    return blurhash.encode(img, *BLURHASH_COMPONENTS)


def dominant_color(img: Image.Image) -> str:
    """The most common colour after quantising to 16 colours (ties: the first), ``#rrggbb``."""
    quantised = img.convert("RGB").quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or [0, 0, 0]
    counts = quantised.getcolors() or [(1, 0)]
    _, index = max(counts, key=lambda item: item[0])
    assert isinstance(index, int)
    r, g, b = palette[index * 3 : index * 3 + 3]
    return f"#{r:02x}{g:02x}{b:02x}"
