"""A database or a store that goes away is a 503 with Retry-After, never a 500: a connection
terminated under a transaction rolls it back (``DatabaseUnavailable``) and the next one gets a
fresh connection; a server that cannot be reached is refused the same way; a store refusing an
upload's write records nothing."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any, cast

import anyio
import asyncpg
import httpx
import pytest
from imagekit import jpeg_bytes, make_settings
from sqlalchemy import text

from chitram_core import Chitram
from chitram_core.db import Database, database
from chitram_core.db.database import DatabaseUnavailable
from chitram_core.errors import ServiceUnavailable
from chitram_core.storage import Storage, StorageError, open_storage
from chitram_falcon import create_app

pytestmark = pytest.mark.anyio


async def terminate(url: str, pid: int) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


@pytest.mark.postgres
@pytest.mark.asyncio_only
async def test_a_connection_terminated_mid_transaction_is_unavailable_and_rolled_back(
    fresh_postgres_url: str,
) -> None:
    db = Database(fresh_postgres_url, pool_size=1)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            async with db.transaction() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO jobs (kind, key, state, attempts, next_attempt_at,"
                        " created_at, updated_at) VALUES ('k', 'x', 'pending', 0, now(), now(),"
                        " now())"
                    )
                )
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                await terminate(fresh_postgres_url, pid)
                await conn.execute(text("SELECT 1"))
        assert isinstance(caught.value, ServiceUnavailable)
        assert caught.value.status == 503 and caught.value.retry_after >= 1
        # The pool let the dead connection go: the next transaction works, and the first one's
        # insert was never committed.
        async with db.transaction() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
        assert count == 0
    finally:
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.asyncio_only
@pytest.mark.parametrize("then", ["commit", "lock"])
async def test_a_backend_terminated_before_the_next_step_is_unavailable_not_a_500(
    fresh_postgres_url: str, then: str
) -> None:
    """The server's "terminating connection" answer can reach the driver as the reply to the
    next statement or to the commit, before the socket is seen closed: still a 503."""
    db = Database(fresh_postgres_url, pool_size=1)
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.transaction() as conn:
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                await terminate(fresh_postgres_url, pid)
                if then == "lock":
                    await conn.execute(text("SELECT id FROM images WHERE id = 'x' FOR UPDATE"))
        async with db.transaction() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await db.dispose()


async def backend_pid(db: Database) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.mark.postgres
@pytest.mark.asyncio_only
async def test_a_connection_stuck_mid_answer_is_unavailable_and_never_handed_out_again(
    fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg's "cannot switch to state 12; another operation (2) is in progress": the
    connection's protocol is stuck in an answer a terminated server never finished (seen in the
    fleet soak while every backend was terminated). A 503, and the pool drops the connection:
    the next checkout, not pinged (it rested only a moment), gets a new backend."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 3600.0)
    db = Database(fresh_postgres_url, pool_size=1)
    stuck_once = [True]
    prepare = asyncpg.connection.Connection.prepare

    async def stuck(self: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
        if stuck_once.pop() if stuck_once else False:
            raise asyncpg.exceptions.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )
        return await prepare(self, *args, **kwargs)

    try:
        pid = await backend_pid(db)
        monkeypatch.setattr(asyncpg.connection.Connection, "prepare", stuck)
        with pytest.raises(DatabaseUnavailable) as caught:
            async with db.connect() as conn:
                await conn.execute(text("SELECT 2"))
        assert caught.value.status == 503
        assert await backend_pid(db) != pid
    finally:
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.asyncio_only
async def test_a_rested_connection_that_died_is_replaced_unseen(
    fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection that rested longer than ``PING_AFTER_IDLE`` is pinged before use;
    one the server ended meanwhile is swapped for a new one, and the caller never knows."""
    db = Database(fresh_postgres_url, pool_size=1)
    try:
        before = await backend_pid(db)
        await terminate(fresh_postgres_url, before)
        monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.0)
        assert await backend_pid(db) != before
    finally:
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.asyncio_only
async def test_a_connection_the_server_closed_is_replaced_unseen_without_a_ping(
    fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection back from work a moment ago goes to work without a ping (round trips saved
    on every short transaction), but one the driver saw the server close (a terminated
    backend, a restart) is swapped for a new one before it is used."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 3600.0)
    db = Database(fresh_postgres_url, pool_size=1)
    pings = 0
    ping = db.engine.sync_engine.dialect.do_ping

    def counted(dbapi_conn: object) -> bool:
        nonlocal pings
        pings += 1
        return bool(ping(dbapi_conn))

    monkeypatch.setattr(db.engine.sync_engine.dialect, "do_ping", counted)
    try:
        async with db.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            before = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        assert await backend_pid(db) == before and pings == 0
        await terminate(fresh_postgres_url, before)
        with anyio.fail_after(10):  # the driver reads the server's goodbye and the socket close
            while not raw.is_closed():  # type: ignore[union-attr]  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert await backend_pid(db) != before
        assert pings == 0
    finally:
        await db.dispose()


@pytest.mark.asyncio_only
async def test_a_server_that_cannot_be_reached_is_unavailable(unused_port: int) -> None:
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{unused_port}/nothing")
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await db.dispose()


class StoreOutage:
    """A real local store that fails every write and read while ``down``, as a store in an
    outage does."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        if self.down:
            raise StorageError("the store refused the write")
        return await self.inner.write(key, chunks)

    async def read(
        self, key: str, start: int = 0, end: int | None = None, **kwargs: object
    ) -> AsyncIterator[bytes]:
        if self.down:
            raise StorageError("the store is not answering")
        async for chunk in self.inner.read(key, start, end, **kwargs):  # type: ignore[arg-type]
            yield chunk


async def test_a_store_in_an_outage_is_unavailable_for_uploads_and_reads(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    storage = StoreOutage(open_storage(f"file://{tmp_path / 'store'}"))
    async with Chitram(settings, storage=cast(Storage, storage), background=False) as chitram:
        session = await chitram.auth.register("store@example.com", "correct horse battery")
        owner = await chitram.auth.authenticate(session.access_token)
        kept = await chitram.images.upload(jpeg_bytes(), filename="kept.jpg", owner=owner)
        storage.down = True
        with pytest.raises(ServiceUnavailable) as caught:
            await chitram.images.upload(jpeg_bytes(color="red"), filename="a.jpg", owner=owner)
        assert caught.value.status == 503 and caught.value.retry_after == 5
        listed = await chitram.images.list(owner=owner)
        assert [image.id for image in listed.items] == [kept.id]  # the refused one: nothing
        with pytest.raises(ServiceUnavailable):
            _ = [chunk async for chunk in chitram.images.read(kept.id)]
        storage.down = False
        data = b"".join([chunk async for chunk in chitram.images.read(kept.id)])
        assert len(data) == kept.file_size


async def test_over_http_a_read_in_a_store_outage_is_an_uncacheable_503(tmp_path: Path) -> None:
    storage = StoreOutage(open_storage(f"file://{tmp_path / 'store'}"))
    settings = make_settings(tmp_path)
    async with Chitram(settings, storage=cast(Storage, storage), background=False) as chitram:
        transport = httpx.ASGITransport(app=create_app(chitram))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            registered = await client.post(
                "/api/v1/auth/register",
                json={"email": "reader@example.com", "password": "correct horse battery"},
            )
            auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}
            uploaded = await client.post(
                "/api/v1/images/upload",
                files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")},
                headers=auth,
            )
            image_id = uploaded.json()["id"]
            storage.down = True
            resp = await client.get(f"/api/v1/images/{image_id}/file")
            assert resp.status_code == 503
            assert resp.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
            assert resp.headers["retry-after"] == "5"
            assert resp.headers["cache-control"] == "no-store"
            assert "etag" not in resp.headers and "content-disposition" not in resp.headers
            storage.down = False
            resp = await client.get(f"/api/v1/images/{image_id}/file")
            assert resp.status_code == 200 and "immutable" in resp.headers["cache-control"]


@pytest.mark.postgres
@pytest.mark.asyncio_only
@pytest.mark.parametrize("scheme", ["postgresql://", "postgres://"])
async def test_a_postgresql_url_without_a_driver_connects_with_asyncpg(
    postgres_session_url: str, scheme: str
) -> None:
    """The URL a hosting service hands out works as given, not as a missing psycopg import."""
    db = Database(postgres_session_url.replace("postgresql+asyncpg://", scheme))
    try:
        assert db.dialect == "postgresql"
        assert await db.ping() >= 0
    finally:
        await db.dispose()
