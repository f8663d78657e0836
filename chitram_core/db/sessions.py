"""SQL for revoked sessions: provider sessions signed out here, refused until they expire."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import revoked_sessions
from chitram_core.db.upsert import insert_or_ignore


async def revoke(conn: AsyncConnection, key: str, expires_at: datetime) -> None:
    """Record ``key`` as revoked until ``expires_at`` (kept at the later one when repeated)."""
    values = {"key": key, "expires_at": expires_at}
    if not await insert_or_ignore(conn, revoked_sessions, values, ["key"]):
        await conn.execute(
            update(revoked_sessions)
            .where(revoked_sessions.c.key == key, revoked_sessions.c.expires_at < expires_at)
            .values(expires_at=expires_at)
        )


async def any_revoked(conn: AsyncConnection, keys: Sequence[str], now: datetime) -> bool:
    if not keys:
        return False
    query = (
        select(revoked_sessions.c.key)
        .where(revoked_sessions.c.key.in_(list(keys)), revoked_sessions.c.expires_at > now)
        .limit(1)
    )
    return (await conn.execute(query)).first() is not None


async def delete_expired(conn: AsyncConnection, now: datetime) -> int:
    result = await conn.execute(
        delete(revoked_sessions).where(revoked_sessions.c.expires_at <= now)
    )
    return int(result.rowcount or 0)
