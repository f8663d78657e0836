"""Tests of the embedding examples and the out-of-tree plugin package."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
