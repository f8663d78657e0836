"""SQL for ``pending_deletions``: storage keys whose bytes are to go, and whether a key is live.

The queue is what makes a delete safe when storage fails: the row goes in the delete's
transaction and leaves only once the bytes are gone (or a new upload revived the key).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import blobs, pending_deletions, thumbnails, utcnow, variants


async def record(conn: AsyncConnection, keys: Sequence[str]) -> None:
    """Queue each key for removal (a key already queued stays as it is)."""
    for key in keys:
        exists = (
            await conn.execute(
                select(pending_deletions.c.storage_key).where(
                    pending_deletions.c.storage_key == key
                )
            )
        ).first()
        if exists is None:
            await conn.execute(
                insert(pending_deletions).values(storage_key=key, created_at=utcnow())
            )


_FORGET = delete(pending_deletions).where(pending_deletions.c.storage_key == bindparam("key"))
"""Built once (every upload runs it): a constant statement's compiled form is found by its
memoised cache key."""


async def forget(conn: AsyncConnection, key: str) -> None:
    """Take the key off the queue: its bytes are gone, or live again."""
    await conn.execute(_FORGET, {"key": key})


async def lock(conn: AsyncConnection, key: str) -> bool:
    """Lock the key's queue row for the transaction; False when it is not queued."""
    query = select(pending_deletions.c.storage_key).where(pending_deletions.c.storage_key == key)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    return (await conn.execute(query)).first() is not None


async def note_failure(conn: AsyncConnection, key: str, error: str) -> None:
    """Count a failed removal and keep its reason; the key stays queued."""
    await conn.execute(
        update(pending_deletions)
        .where(pending_deletions.c.storage_key == key)
        .values(attempts=pending_deletions.c.attempts + 1, last_error=error[:500])
    )


async def oldest(conn: AsyncConnection, limit: int) -> list[str]:
    """Up to ``limit`` queued keys, the longest waiting first."""
    rows = await conn.execute(
        select(pending_deletions.c.storage_key)
        .order_by(pending_deletions.c.created_at)
        .limit(limit)
    )
    return [r[0] for r in rows]


async def key_is_live(conn: AsyncConnection, key: str) -> bool:
    """Whether a blob, thumbnail or variant row names the key (its bytes must stay)."""
    blob = await conn.execute(select(blobs.c.sha256).where(blobs.c.storage_key == key).limit(1))
    if blob.first() is not None:
        return True
    thumb = await conn.execute(select(thumbnails.c.key).where(thumbnails.c.key == key).limit(1))
    if thumb.first() is not None:
        return True
    variant = await conn.execute(select(variants.c.key).where(variants.c.key == key).limit(1))
    return variant.first() is not None


async def live_keys(conn: AsyncConnection) -> set[str]:
    """Every storage key a blob, thumbnail or variant row names."""
    live = {row[0] for row in await conn.execute(select(blobs.c.storage_key))}
    live |= {row[0] for row in await conn.execute(select(thumbnails.c.key))}
    live |= {row[0] for row in await conn.execute(select(variants.c.key))}
    return live


async def migration_keys(conn: AsyncConnection) -> list[str]:
    """What a storage migration must copy: every blob and every ready thumbnail (variants are
    renders, made again on request)."""
    keys = [row[0] for row in await conn.execute(select(blobs.c.storage_key))]
    ready = select(thumbnails.c.key).where(thumbnails.c.status == "ready")
    keys += [row[0] for row in await conn.execute(ready)]
    return keys
