"""The image a tagging model sees: a JPEG of at most 512 px a side, with no metadata at all.

Smaller is cheaper (a model bills by image size) and safer (no EXIF, GPS or ICC data leaves the
server). The decode is of user bytes, so it is bounded like a thumbnail's: the pixel limit is
checked from the header, JPEG shrinks on load (``draft``), only the accepted, installed formats
open, and it runs in the image engine, within its memory budget and killed past the decode timeout
(:func:`~chitram_core.engine.render.model_input_async`).
"""

from __future__ import annotations

import io

from PIL import Image

from chitram_core.errors import ChitramError, InvalidImage
from chitram_core.images.formats import PILLOW_ERRORS, _reason
from chitram_core.images.thumbnails import _INPUT_FORMATS, _fit, _normalise, _orient

MODEL_MAX_SIDE = 512
MODEL_QUALITY = 85


def model_jpeg(data: bytes, *, max_pixels: int, max_side: int = MODEL_MAX_SIDE) -> bytes:
    """SYNC: ``data`` as a metadata-free JPEG fitting ``max_side``; :class:`InvalidImage`."""
    try:
        with Image.open(io.BytesIO(data), formats=_INPUT_FORMATS) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise InvalidImage(
                    f"The image has {width * height} pixels, more than the limit of {max_pixels}"
                )
            orientation = img.getexif().get(0x0112, 1)
            if img.format in ("JPEG", "MPO"):
                img.draft(
                    img.mode if img.mode in ("RGB", "L") else None, _fit(width, height, max_side)
                )
            img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
            out = _orient(_normalise(img, keep_alpha=False), orientation)
            if out.mode not in ("RGB", "L"):
                out = out.convert("RGB")
            out.info = {}  # Pillow carries a source's comment (and more) over from ``info``
            buf = io.BytesIO()
            out.save(buf, format="JPEG", quality=MODEL_QUALITY, optimize=True)
            return buf.getvalue()
    except ChitramError as exc:
        if isinstance(exc, InvalidImage):
            raise
        raise InvalidImage(exc.message) from None
    except PILLOW_ERRORS as exc:
        raise InvalidImage(f"Cannot prepare the image for tagging: {_reason(exc)}") from None
