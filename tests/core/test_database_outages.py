"""A database or a store that goes away is a 503 with Retry-After, never a 500: a connection
terminated under a transaction rolls it back (``DatabaseUnavailable``) and the next one gets a
fresh connection; a server that cannot be reached is refused the same way; a store refusing an
upload's write records nothing."""

from __future__ import annotations

from collections.abc import AsyncIterable
from pathlib import Path
from typing import cast

import asyncpg
import pytest
from imagekit import jpeg_bytes, make_settings
from sqlalchemy import text

from chitram_core import Chitram
from chitram_core.db import Database
from chitram_core.db.database import DatabaseUnavailable
from chitram_core.errors import ServiceUnavailable
from chitram_core.storage import Storage, StorageError, open_storage

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


@pytest.mark.asyncio_only
async def test_a_server_that_cannot_be_reached_is_unavailable(unused_port: int) -> None:
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{unused_port}/nothing")
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await db.dispose()


class WritesRefused:
    """A real local store whose writes fail, as a store in an outage does."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        raise StorageError("the store refused the write")


async def test_a_store_refusing_writes_is_unavailable_and_records_nothing(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    storage = WritesRefused(open_storage(f"file://{tmp_path / 'store'}"))
    async with Chitram(settings, storage=cast(Storage, storage), background=False) as chitram:
        session = await chitram.auth.register("store@example.com", "correct horse battery")
        owner = await chitram.auth.authenticate(session.access_token)
        with pytest.raises(ServiceUnavailable) as caught:
            await chitram.images.upload(jpeg_bytes(), filename="a.jpg", owner=owner)
        assert caught.value.status == 503 and caught.value.retry_after == 5
        listed = await chitram.images.list(owner=owner)
        assert list(listed.items) == []
