"""SQL for quotas: a user's own limits and what their images use.

Usage is counted from the rows, not kept in a counter: each image counts its blob's size (an
image deduplicated onto another's bytes counts them again), and deleting an image frees its
share by removing the row, so nothing can drift. The count walks the owner's index
(``ix_images_owner_created``) and joins each blob by its key.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import blobs, images, user_quotas, users, utcnow

_USAGE = (
    select(func.coalesce(func.sum(blobs.c.size), 0), func.count(images.c.id))
    .select_from(images.join(blobs, images.c.sha256 == blobs.c.sha256))
    .where(images.c.owner_id == bindparam("user_id"))
)
_OVERRIDES = select(user_quotas.c.quota_bytes, user_quotas.c.quota_images).where(
    user_quotas.c.user_id == bindparam("user_id")
)


async def usage(conn: AsyncConnection, user_id: str) -> tuple[int, int]:
    """(bytes, images) the user's images use now."""
    row = (await conn.execute(_USAGE, {"user_id": user_id})).one()
    return int(row[0]), int(row[1])


async def overrides(conn: AsyncConnection, user_id: str) -> tuple[int | None, int | None]:
    """The user's own (bytes, images) limits; None where the default applies."""
    row = (await conn.execute(_OVERRIDES, {"user_id": user_id})).first()
    if row is None:
        return None, None
    return row[0], row[1]


async def lock_user(conn: AsyncConnection, user_id: str) -> bool:
    """Lock the user's row for the transaction (SQLite's writer lock already serialises every
    write transaction), so two uploads of one user are counted one after the other. False
    when there is no such user."""
    query = select(users.c.id).where(users.c.id == user_id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    return (await conn.execute(query)).first() is not None


async def set_overrides(
    conn: AsyncConnection, user_id: str, quota_bytes: int | None, quota_images: int | None
) -> None:
    """Set the user's own limits; both None removes them (the defaults apply again)."""
    if quota_bytes is None and quota_images is None:
        await conn.execute(delete(user_quotas).where(user_quotas.c.user_id == user_id))
        return
    values = dict(quota_bytes=quota_bytes, quota_images=quota_images, updated_at=utcnow())
    changed = await conn.execute(
        update(user_quotas).where(user_quotas.c.user_id == user_id).values(**values)
    )
    if changed.rowcount == 0:
        await conn.execute(insert(user_quotas).values(user_id=user_id, **values))
