"""Fixtures for limits tests."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis


@pytest.fixture
def unused_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A unique key prefix; afterwards only keys under it are removed (never FLUSHALL)."""
    prefix = f"chitram-test:{uuid.uuid4().hex}:"
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
