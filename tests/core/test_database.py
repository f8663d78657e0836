"""How ``Database`` talks to PostgreSQL: reads outside a transaction, writes inside one."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from chitram_core.db import Database

pytestmark = pytest.mark.anyio

XID = text("SELECT txid_current()")
"""The id of the transaction the statement runs in (one is assigned on the first call)."""


@pytest.mark.postgres
@pytest.mark.asyncio_only
async def test_each_read_is_its_own_transaction_and_a_write_transaction_is_one(
    fresh_postgres_url: str,
) -> None:
    """``connect()`` sends no BEGIN (each statement commits on its own, which saves two round
    trips per read); ``transaction()`` keeps its statements in one."""
    db = Database(fresh_postgres_url, pool_size=1)
    try:
        async with db.connect() as conn:
            first = (await conn.execute(XID)).scalar_one()
            assert (await conn.execute(XID)).scalar_one() != first
        async with db.transaction() as conn:
            first = (await conn.execute(XID)).scalar_one()
            assert (await conn.execute(XID)).scalar_one() == first
    finally:
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.asyncio_only
async def test_a_one_statement_write_commits_by_itself(fresh_postgres_url: str) -> None:
    """``one_statement()`` on PostgreSQL: the statement is its own transaction (no BEGIN or
    COMMIT round trips), committed when it returns."""
    db = Database(fresh_postgres_url, pool_size=2)
    try:
        async with db.one_statement() as conn:
            first = (await conn.execute(XID)).scalar_one()
            assert (await conn.execute(XID)).scalar_one() != first
            await conn.execute(
                text(
                    "INSERT INTO jobs (kind, key, state, attempts, next_attempt_at, created_at,"
                    " updated_at) VALUES ('k', 'x', 'pending', 0, now(), now(), now())"
                )
            )
            async with db.connect() as other:  # another connection sees it at once
                seen = await other.execute(text("SELECT count(*) FROM jobs WHERE key = 'x'"))
                assert seen.scalar_one() == 1
    finally:
        await db.dispose()
