"""The hot read path: GET /file of a small image on a warm cache makes no database round trip.

Statements are counted at the driver (SQLAlchemy ``before_cursor_execute`` on the instance's
engine), over the real Falcon app: on the embedded default (SQLite, in-process cache) and on
PostgreSQL with the metadata cache in process and in Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverkit import jpeg_bytes, noisy_jpeg
from sqlalchemy import event

from chitram_core import Chitram, Settings
from chitram_falcon import create_app


class StatementLog:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)


@pytest.fixture(
    params=[
        pytest.param("embedded", id="sqlite-memory"),
        pytest.param("memory", id="postgres-memory", marks=pytest.mark.postgres),
        pytest.param("redis", id="postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def backends(request: pytest.FixtureRequest) -> tuple[str | None, str]:
    """(database URL, cache URL): the embedded default, PostgreSQL + memory, PostgreSQL + Redis."""
    if request.param == "embedded":
        return None, "memory://"
    database_url: str = request.getfixturevalue("fresh_postgres_url")
    if request.param == "memory":
        return database_url, "memory://"
    redis_url = request.getfixturevalue("redis_url")
    return database_url, f"{redis_url}?prefix=chitram-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def chitram(backends: tuple[str | None, str], tmp_path: Path) -> AsyncIterator[Chitram]:
    database_url, cache_url = backends
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        storage_url=f"memory://hot-{uuid.uuid4().hex}",
        cache_url=cache_url,
        upload_rate_limit=None,
        auth_rate_limit=None,
        web_ui=False,
    )
    async with Chitram(settings, background=False) as opened:
        yield opened


@pytest.mark.anyio
async def test_get_file_on_a_warm_cache_makes_no_database_round_trip(chitram: Chitram) -> None:
    data = jpeg_bytes(40, 30)
    image = await chitram.images.upload(data, filename="small.jpg")
    app = create_app(chitram)
    statements = StatementLog()
    engine = chitram.database.engine.sync_engine
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chitram.test") as client:
        event.listen(engine, "before_cursor_execute", statements)
        try:
            cold = await client.get(f"/api/v1/images/{image.id}/file")
            assert cold.status_code == 200 and cold.content == data
            assert statements.statements, "the cold read should have loaded the row"
            statements.statements.clear()

            for _ in range(5):
                warm = await client.get(f"/api/v1/images/{image.id}/file")
                assert warm.status_code == 200 and warm.content == data
            head = await client.head(f"/api/v1/images/{image.id}/file")
            assert head.status_code == 200
            ranged = await client.get(
                f"/api/v1/images/{image.id}/file", headers={"Range": "bytes=0-9"}
            )
            assert ranged.status_code == 206 and ranged.content == data[:10]
            revalidated = await client.get(
                f"/api/v1/images/{image.id}/file", headers={"If-None-Match": warm.headers["etag"]}
            )
            assert revalidated.status_code == 304
        finally:
            event.remove(engine, "before_cursor_execute", statements)
    assert statements.statements == []


@pytest.mark.anyio
async def test_get_metadata_on_a_warm_cache_makes_no_database_round_trip(
    chitram: Chitram,
) -> None:
    image = await chitram.images.upload(jpeg_bytes(40, 30), filename="small.jpg")
    app = create_app(chitram)
    statements = StatementLog()
    engine = chitram.database.engine.sync_engine
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chitram.test") as client:
        assert (await client.get(f"/api/v1/images/{image.id}")).headers["X-Cache"] == "MISS"
        event.listen(engine, "before_cursor_execute", statements)
        try:
            warm = await client.get(f"/api/v1/images/{image.id}")
        finally:
            event.remove(engine, "before_cursor_execute", statements)
    assert warm.headers["X-Cache"] == "HIT"
    assert statements.statements == []


class CountingReads:
    """Wraps the instance's storage and counts the reads that reach it."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def read(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.reads.append(key)
        return self.storage.read(key, *args, **kwargs)


@pytest.mark.anyio
async def test_a_small_image_on_a_warm_path_is_served_without_a_storage_read(
    chitram: Chitram,
) -> None:
    small = jpeg_bytes(40, 30)
    large = noisy_jpeg(320, 320, seed=3)
    assert len(small) < 64 * 1024 < len(large)
    first = await chitram.images.upload(small, filename="small.jpg")
    second = await chitram.images.upload(large, filename="large.jpg")
    counting = CountingReads(chitram.images.objects.storage)
    chitram.images.objects.storage = counting
    transport = httpx.ASGITransport(app=create_app(chitram))
    async with httpx.AsyncClient(transport=transport, base_url="http://chitram.test") as client:
        for image, data in ((first, small), (second, large)):
            assert (await client.get(f"/api/v1/images/{image.id}/file")).content == data
        counting.reads.clear()
        for image, data in ((first, small), (second, large)):
            for _ in range(3):
                resp = await client.get(f"/api/v1/images/{image.id}/file")
                assert resp.content == data
            ranged = await client.get(
                f"/api/v1/images/{image.id}/file", headers={"Range": "bytes=5-14"}
            )
            assert ranged.content == data[5:15]
        # Deleting the last image that uses the bytes drops them from memory too.
        await chitram.images.delete(first.id, delete_token=first.delete_token)
        assert (await client.get(f"/api/v1/images/{first.id}/file")).status_code == 404
    assert set(counting.reads) == {
        f"blobs/{second.sha256[:2]}/{second.sha256[2:4]}/{second.sha256}"
    }
    assert chitram.images.small_objects.get(first.sha256) is None
