"""Variant tests: HTTP via httpx over a real Chitram (SQLite + files), and the SDK."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))  # for httpkit

from httpkit import Env, open_env
from variantkit import KEYS


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path, variant_keys=KEYS) as opened:
        yield opened
