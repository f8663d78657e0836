"""Helpers many test packages share: small images, settings for a test, the test password."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from PIL import ImageCms

from chitram_core import Settings

PASSWORD = "correct horse battery"


def png_bytes(width: int = 40, height: int = 30, color: str = "red") -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48, color: str = "blue") -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def photo_png(width: int = 1600, height: int = 1200, *, seed: int = 0) -> bytes:
    """A photo saved as PNG (about 2.3 MB at the default size): smooth colour gradients,
    soft blotches and a fine grain, as a camera picture has, not flat art. Seeded, so every
    run gets the same bytes."""
    rng = random.Random(seed)
    ramp = PILImage.linear_gradient("L").resize((width, height))
    ring = PILImage.radial_gradient("L").resize((width, height))
    turned = ramp.transpose(PILImage.Transpose.ROTATE_90).resize((width, height))
    img = PILImage.merge("RGB", (ramp, ring, turned))
    small = (max(1, width // 16), max(1, height // 16))
    blotches = [
        PILImage.frombytes("L", small, rng.randbytes(small[0] * small[1])).resize(
            (width, height), PILImage.Resampling.BICUBIC
        )
        for _ in range(3)
    ]
    img = PILImage.blend(img, PILImage.merge("RGB", blotches), 0.3)
    grain = PILImage.frombytes("L", (width, height), rng.randbytes(width * height))
    img = PILImage.blend(img, grain.convert("RGB"), 0.012)
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def other_rgb_profile() -> bytes:
    """An RGB colour profile that is not sRGB: Pillow's sRGB profile with its red and blue
    primaries swapped in the tag table (a valid profile for a very different space)."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack_from(">I", data, 128)
    entries = {bytes(data[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    data[red + 4 : red + 12], data[blue + 4 : blue + 12] = (
        data[blue + 4 : blue + 12],
        data[red + 4 : red + 12],
    )
    return bytes(data)


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "upload_rate_limit": None,
        "auth_rate_limit": None,
        "web_ui": False,
    }
    values.update(overrides)
    return Settings(**values)
