"""A database that goes away is a 503 with Retry-After (``DatabaseUnavailable``), never a 500:
a connection terminated under a transaction rolls it back and the next one gets a fresh
connection; a server that cannot be reached is refused the same way."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from chitram_core.db import Database
from chitram_core.db.database import DatabaseUnavailable
from chitram_core.errors import ServiceUnavailable

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.asyncio_only]


async def terminate(url: str, pid: int) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


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


async def test_a_server_that_cannot_be_reached_is_unavailable(unused_port: int) -> None:
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{unused_port}/nothing")
    try:
        with pytest.raises(DatabaseUnavailable):
            async with db.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await db.dispose()
