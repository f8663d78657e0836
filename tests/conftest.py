"""Shared fixtures: the async backend and access to the real services.

Tests that need PostgreSQL, Redis or S3 skip when the service is absent, except under
``CI=true``, where a missing service is a loud failure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from netkit import free_port

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "CHITRAM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CHITRAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when ``name`` is not reachable, or fail when running under CI."""
    if port_open(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration services must run)")
    pytest.skip(message)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The SDK runs on both of anyio's backends, so its tests do too."""
    return str(request.param)


ASYNCIO_ONLY = {
    "postgres": "PostgreSQL (asyncpg) runs on asyncio only",
    "redis": "Redis (redis-py's asyncio client) runs on asyncio only",
    "asyncio_only": "the part under test runs on asyncio only",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The trio run of a test of a part whose client library runs on asyncio only is skipped,
    with the reason (Chitram refuses such a part under trio when it opens)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or callspec.params.get("anyio_backend") != "trio":
            continue
        for marker, reason in ASYNCIO_ONLY.items():
            if item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=f"{reason} (trio run skipped)"))
                break


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def unused_port() -> int:
    """A local port nobody listens on."""
    return free_port()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A unique key prefix; afterwards only keys under it are removed (never FLUSHALL)."""
    import uuid

    from redis.asyncio import Redis

    prefix = f"chitram-test:{uuid.uuid4().hex}:"
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the whole session; yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        if IN_CI:
            pytest.fail("moto[server] is not installed (CI=true)")
        pytest.skip("moto[server] is not installed")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_bucket(moto_server: str) -> str:
    """A bucket on the moto server; tests use their own prefixes inside it."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="chitram-test")
    return "chitram-test"


@pytest.fixture(scope="session")
def pg_database(postgres_session_url: str) -> str:
    return postgres_session_url


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped at the end), migrated."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import asyncio
    import uuid

    import asyncpg

    name = f"chitram_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def _admin(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    from chitram_core.db.database import upgrade_sync

    upgrade_sync(url)
    try:
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_postgres_url(postgres_session_url: str) -> str:
    """The session database, emptied before the test."""
    import asyncio

    import asyncpg

    async def _truncate() -> None:
        conn = await asyncpg.connect(
            postgres_session_url.replace("postgresql+asyncpg://", "postgresql://")
        )
        try:
            await conn.execute(
                "TRUNCATE images, thumbnails, blobs, pending_deletions, refresh_tokens, users"
                ", tags, jobs"  # tags (image_tags goes with images and tags)
                " CASCADE"
            )
        finally:
            await conn.close()

    asyncio.run(_truncate())
    return postgres_session_url
