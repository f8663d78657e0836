"""Helpers many test packages share: small images, settings for a test, the test password."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

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


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "upload_rate_limit": None,
        "auth_rate_limit": None,
        "web_ui": False,
    }
    values.update(overrides)
    return Settings(**values)
