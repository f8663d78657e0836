"""SQL for resumable uploads: one row per upload, one row per stored chunk.

The offset moves with a compare-and-set (``WHERE offset = <the offset the chunk started at>``)
in the transaction that records the chunk's part: of two requests writing the same upload,
in one process or in two, exactly one moves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import resumable_parts, resumable_uploads, utcnow


async def create(
    conn: AsyncConnection,
    *,
    upload_id: str,
    owner_id: str | None,
    length: int,
    filename: str | None,
    expires_at: datetime,
) -> None:
    await conn.execute(
        insert(resumable_uploads).values(
            id=upload_id,
            owner_id=owner_id,
            length=length,
            received=0,
            filename=filename,
            image_id=None,
            created_at=utcnow(),
            expires_at=expires_at,
        )
    )


async def get(conn: AsyncConnection, upload_id: str) -> dict[str, Any] | None:
    """The upload's row as a dict (``received`` is its offset), None when there is none."""
    row = await conn.execute(select(resumable_uploads).where(resumable_uploads.c.id == upload_id))
    found = row.mappings().first()
    return None if found is None else dict(found)


async def advance(
    conn: AsyncConnection,
    upload_id: str,
    *,
    start: int,
    size: int,
    storage_key: str,
    image_id: str | None = None,
) -> bool:
    """Record the part ``[start, start + size)`` and move the offset past it, if the offset is
    still ``start``; False (nothing written) when another request moved it first."""
    moved = await conn.execute(
        update(resumable_uploads)
        .where(resumable_uploads.c.id == upload_id, resumable_uploads.c.received == start)
        .values(received=start + size, image_id=image_id)
    )
    if moved.rowcount != 1:
        return False
    await conn.execute(
        insert(resumable_parts).values(
            upload_id=upload_id, start=start, size=size, storage_key=storage_key
        )
    )
    return True


async def set_image(conn: AsyncConnection, upload_id: str, image_id: str) -> None:
    await conn.execute(
        update(resumable_uploads)
        .where(resumable_uploads.c.id == upload_id)
        .values(image_id=image_id)
    )


async def parts(conn: AsyncConnection, upload_id: str) -> list[tuple[int, int, str]]:
    """``(start, size, storage_key)`` of every stored part, in order."""
    rows = await conn.execute(
        select(resumable_parts.c.start, resumable_parts.c.size, resumable_parts.c.storage_key)
        .where(resumable_parts.c.upload_id == upload_id)
        .order_by(resumable_parts.c.start)
    )
    return [(r.start, r.size, r.storage_key) for r in rows]


async def forget_parts(conn: AsyncConnection, upload_id: str) -> None:
    await conn.execute(delete(resumable_parts).where(resumable_parts.c.upload_id == upload_id))


async def remove(conn: AsyncConnection, upload_id: str) -> None:
    """The upload's row and its parts' rows (the caller removes the parts' objects)."""
    await forget_parts(conn, upload_id)
    await conn.execute(delete(resumable_uploads).where(resumable_uploads.c.id == upload_id))


async def expired(conn: AsyncConnection, now: datetime, limit: int = 1000) -> Sequence[str]:
    """Uploads past their expiry, finished or not, oldest first."""
    rows = await conn.execute(
        select(resumable_uploads.c.id)
        .where(resumable_uploads.c.expires_at <= now)
        .order_by(resumable_uploads.c.expires_at)
        .limit(limit)
    )
    return [r.id for r in rows]


async def known_keys(conn: AsyncConnection, keys: Sequence[str]) -> set[str]:
    """Those of ``keys`` that a part row names."""
    if not keys:
        return set()
    rows = await conn.execute(
        select(resumable_parts.c.storage_key).where(resumable_parts.c.storage_key.in_(keys))
    )
    return {r.storage_key for r in rows}
