"""SQL for the ``variants`` table (the record and the cross-process render claim of each
variant) and for the blobs' placeholders that the variant service fills in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import blobs, ready_columns, variants


async def get(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(variants).where(variants.c.key == key))).mappings().first()
    return dict(row) if row is not None else None


async def claim_state(conn: AsyncConnection, key: str) -> tuple[str, datetime | None] | None:
    """(status, claimed_at) of the variant's row; None when there is none."""
    row = (
        await conn.execute(
            select(variants.c.status, variants.c.claimed_at).where(variants.c.key == key)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def insert_claim(
    conn: AsyncConnection, key: str, sha256: str, spec: str, now: datetime
) -> bool:
    """A ``rendering`` row claimed at ``now``; False when another process inserted first."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(variants).values(
                    key=key,
                    sha256=sha256,
                    spec=spec,
                    status="rendering",
                    claimed_at=now,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


async def take_over(
    conn: AsyncConnection, key: str, claimed_at: datetime | None, now: datetime
) -> bool:
    """Take a stale claim, if it is still the one seen (one winner among racing processes)."""
    taken = await conn.execute(
        update(variants)
        .where(variants.c.key == key, variants.c.claimed_at == claimed_at)
        .values(claimed_at=now)
    )
    return bool(taken.rowcount)


async def release_claim(conn: AsyncConnection, key: str) -> None:
    """Drop a render claim (the row goes unless it became ready or failed meanwhile)."""
    await conn.execute(
        delete(variants).where(variants.c.key == key, variants.c.status == "rendering")
    )


async def forget(conn: AsyncConnection, key: str) -> None:
    await conn.execute(delete(variants).where(variants.c.key == key))


async def mark_ready(
    conn: AsyncConnection,
    key: str,
    *,
    sha256: str,
    spec: str,
    now: datetime,
    content_type: str,
    size: int,
    width: int,
    height: int,
) -> None:
    """The row says ready; inserted when it is gone (the image was deleted and uploaded again
    while rendering)."""
    values = ready_columns(content_type=content_type, size=size, width=width, height=height)
    done = await conn.execute(update(variants).where(variants.c.key == key).values(**values))
    if not done.rowcount:
        await conn.execute(
            insert(variants).values(
                key=key, sha256=sha256, spec=spec, claimed_at=now, created_at=now, **values
            )
        )


async def mark_failed(conn: AsyncConnection, key: str, reason: str) -> None:
    await conn.execute(
        update(variants).where(variants.c.key == key).values(status="failed", error=reason)
    )


async def without_placeholders(conn: AsyncConnection, limit: int) -> list[tuple[str, int]]:
    """(SHA-256, size) of blobs whose placeholders are not computed yet."""
    rows = await conn.execute(
        select(blobs.c.sha256, blobs.c.size).where(blobs.c.blurhash.is_(None)).limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


async def set_placeholders(
    conn: AsyncConnection, sha256: str, blurhash: str, dominant_color: str | None
) -> None:
    await conn.execute(
        update(blobs)
        .where(blobs.c.sha256 == sha256)
        .values(blurhash=blurhash, dominant_color=dominant_color)
    )
