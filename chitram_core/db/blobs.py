"""SQL for ``blobs``: stored bytes by SHA-256, reference counted by the images that use them.

A blob owns its renditions: the thumbnail and variant rows of its hash go with its last
reference, and every storage key they named is queued in ``pending_deletions``.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db import deletions
from chitram_core.db.tables import blobs, thumbnails, utcnow, variants
from chitram_core.db.upsert import UPSERT_DIALECTS, insert_or_ignore


async def exists(conn: AsyncConnection, sha256: str) -> bool:
    """The bytes are still recorded (False once the blob's last image is deleted)."""
    row = await conn.execute(select(blobs.c.sha256).where(blobs.c.sha256 == sha256))
    return row.first() is not None


async def claim(
    conn: AsyncConnection,
    *,
    sha256: str,
    storage_key: str,
    size: int,
    content_type: str,
    width: int,
    height: int,
    blurhash: str | None = None,
    dominant_color: str | None = None,
) -> bool:
    """Take a reference on the blob; True when the row is new (its bytes must be moved in)."""
    values = dict(
        sha256=sha256,
        storage_key=storage_key,
        size=size,
        content_type=content_type,
        width=width,
        height=height,
        refcount=1,
        created_at=utcnow(),
        blurhash=blurhash,
        dominant_color=dominant_color,
    )
    if conn.dialect.name in UPSERT_DIALECTS:
        # One statement in the usual case (new bytes): the write lock is held for less.
        inserted = await insert_or_ignore(conn, blobs, values, ("sha256",))
        if not inserted:
            await _add_reference(conn, sha256)
            return False
        await deletions.forget(conn, storage_key)
        return True
    bumped = await conn.execute(
        update(blobs).where(blobs.c.sha256 == sha256).values(refcount=blobs.c.refcount + 1)
    )
    if bumped.rowcount:
        return False
    try:
        async with conn.begin_nested():
            await conn.execute(insert(blobs).values(**values))
    except IntegrityError:
        # A concurrent upload of the same bytes inserted it first.
        await _add_reference(conn, sha256)
        return False
    # The key may be queued for removal from an earlier life: it is live again.
    await deletions.forget(conn, storage_key)
    return True


async def _add_reference(conn: AsyncConnection, sha256: str) -> None:
    await conn.execute(
        update(blobs).where(blobs.c.sha256 == sha256).values(refcount=blobs.c.refcount + 1)
    )


async def release(conn: AsyncConnection, sha256: str) -> list[str]:
    """Drop one reference; when it was the last, the rows go and their keys are queued."""
    await conn.execute(
        update(blobs).where(blobs.c.sha256 == sha256).values(refcount=blobs.c.refcount - 1)
    )
    row = (
        await conn.execute(
            select(blobs.c.refcount, blobs.c.storage_key).where(blobs.c.sha256 == sha256)
        )
    ).first()
    if row is None or row[0] > 0:
        return []
    thumb_keys = [
        r[0]
        for r in await conn.execute(select(thumbnails.c.key).where(thumbnails.c.sha256 == sha256))
    ]
    await conn.execute(delete(thumbnails).where(thumbnails.c.sha256 == sha256))
    variant_keys = [
        r[0] for r in await conn.execute(select(variants.c.key).where(variants.c.sha256 == sha256))
    ]
    await conn.execute(delete(variants).where(variants.c.sha256 == sha256))
    await conn.execute(delete(blobs).where(blobs.c.sha256 == sha256))
    keys = [row[1], *thumb_keys, *variant_keys]
    await deletions.record(conn, keys)
    return keys


async def fill_placeholders(
    conn: AsyncConnection, sha256: str, blurhash: str | None, dominant_color: str | None
) -> None:
    """Set the blob's placeholders where they are still missing (an older upload)."""
    await conn.execute(
        update(blobs)
        .where(blobs.c.sha256 == sha256, blobs.c.blurhash.is_(None))
        .values(blurhash=blurhash, dominant_color=dominant_color)
    )
