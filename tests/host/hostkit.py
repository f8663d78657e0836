"""Helpers for the host tests: run a Python script or a pytest session in a fresh process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[2]

# A ceiling that only a hang reaches (each run takes a few seconds); not a timing assertion.
HANG_TIMEOUT = 120.0


def png_bytes(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without CHITRAM_* variables (a host's own settings must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
    env.pop("PYTEST_ADDOPTS", None)
    env.update(extra)
    return env


def run_python(
    script: Path, *args: str, cwd: Path, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(script), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT,
        check=False,
    )
