"""SQL for images, blobs, thumbnails and pending deletions (SQLAlchemy Core, any dialect)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import blobs, images, pending_deletions, thumbnails, utcnow, variants
from chitram_core.errors import ValidationError
from chitram_core.models import Image

_IMAGE_COLUMNS = (
    images.c.id,
    images.c.owner_id,
    images.c.filename,
    images.c.sha256,
    images.c.created_at,
    images.c.delete_token_hash,
    blobs.c.content_type,
    blobs.c.size,
    blobs.c.width,
    blobs.c.height,
    blobs.c.storage_key,
    blobs.c.blurhash,
    blobs.c.dominant_color,
)


def _image_query(params: str) -> Any:
    join = images.join(blobs, images.c.sha256 == blobs.c.sha256).outerjoin(
        thumbnails, and_(thumbnails.c.sha256 == images.c.sha256, thumbnails.c.params == params)
    )
    return select(*_IMAGE_COLUMNS, thumbnails.c.status, thumbnails.c.error).select_from(join)


def row_to_image(row: RowMapping) -> Image:
    return Image(
        id=row["id"],
        filename=row["filename"],
        content_type=row["content_type"],
        file_size=row["size"],
        width=row["width"],
        height=row["height"],
        sha256=row["sha256"],
        created_at=row["created_at"],
        owner_id=row["owner_id"],
        thumbnail_ready=row["status"] == "ready",
        thumbnail_error=row["error"] if row["status"] in ("failed", "stalled") else None,
        blurhash=row["blurhash"],
        dominant_color=row["dominant_color"],
    )


async def fetch_image(conn: AsyncConnection, image_id: str, params: str) -> RowMapping | None:
    result = await conn.execute(_image_query(params).where(images.c.id == image_id))
    return result.mappings().first()


async def lock_image(conn: AsyncConnection, image_id: str) -> RowMapping | None:
    query = select(images).where(images.c.id == image_id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    return (await conn.execute(query)).mappings().first()


def encode_cursor(created_at: datetime, image_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), image_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, image_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(created)
        if not isinstance(image_id, str) or when.tzinfo is None:
            raise ValueError
        return when, image_id
    except (ValueError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError("The cursor is not valid", field="cursor") from exc


async def list_images(
    conn: AsyncConnection,
    owner_id: str,
    *,
    limit: int,
    cursor: str | None,
    params: str,
    filters: Sequence[Any] = (),
) -> tuple[list[Image], str | None]:
    query = _image_query(params).where(images.c.owner_id == owner_id, *filters)
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                images.c.created_at < created,
                and_(images.c.created_at == created, images.c.id < last_id),
            )
        )
    query = query.order_by(images.c.created_at.desc(), images.c.id.desc()).limit(limit + 1)
    rows = (await conn.execute(query)).mappings().all()
    items = [row_to_image(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit and items:
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id)
    return items, next_cursor


async def image_ids_for_blob(conn: AsyncConnection, sha256: str) -> list[str]:
    rows = await conn.execute(select(images.c.id).where(images.c.sha256 == sha256))
    return [row[0] for row in rows]


async def claim_blob(
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
    if conn.dialect.name in _UPSERT_DIALECTS:
        # One statement in the usual case (new bytes): the write lock is held for less.
        inserted = await insert_or_ignore(conn, blobs, values, ("sha256",))
        if not inserted:
            await conn.execute(
                update(blobs).where(blobs.c.sha256 == sha256).values(refcount=blobs.c.refcount + 1)
            )
            return False
        await conn.execute(
            delete(pending_deletions).where(pending_deletions.c.storage_key == storage_key)
        )
        return True
    bumped = await conn.execute(
        update(blobs).where(blobs.c.sha256 == sha256).values(refcount=blobs.c.refcount + 1)
    )
    if bumped.rowcount:
        return False
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(blobs).values(
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
            )
    except IntegrityError:
        # A concurrent upload of the same bytes inserted it first.
        await conn.execute(
            update(blobs).where(blobs.c.sha256 == sha256).values(refcount=blobs.c.refcount + 1)
        )
        return False
    # The key may be queued for removal from an earlier life: it is live again.
    await conn.execute(
        delete(pending_deletions).where(pending_deletions.c.storage_key == storage_key)
    )
    return True


_UPSERT_DIALECTS = frozenset({"sqlite", "postgresql"})


async def insert_or_ignore(
    conn: AsyncConnection, table: Any, values: dict[str, Any], keys: Sequence[str]
) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING`` (SQLite, PostgreSQL); True when a row went in."""
    from sqlalchemy.dialects import postgresql, sqlite

    statement: Any
    if conn.dialect.name == "postgresql":
        statement = postgresql.insert(table).values(**values)
    else:
        statement = sqlite.insert(table).values(**values)
    result = await conn.execute(statement.on_conflict_do_nothing(index_elements=list(keys)))
    return bool(result.rowcount)


async def release_blob(conn: AsyncConnection, sha256: str) -> list[str]:
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
    await queue_deletions(conn, keys)
    return keys


async def queue_deletions(conn: AsyncConnection, keys: Sequence[str]) -> None:
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


async def key_is_live(conn: AsyncConnection, key: str) -> bool:
    blob = await conn.execute(select(blobs.c.sha256).where(blobs.c.storage_key == key).limit(1))
    if blob.first() is not None:
        return True
    thumb = await conn.execute(select(thumbnails.c.key).where(thumbnails.c.key == key).limit(1))
    if thumb.first() is not None:
        return True
    variant = await conn.execute(select(variants.c.key).where(variants.c.key == key).limit(1))
    return variant.first() is not None


async def lock_pending(conn: AsyncConnection, key: str) -> bool:
    query = select(pending_deletions.c.storage_key).where(pending_deletions.c.storage_key == key)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    return (await conn.execute(query)).first() is not None


async def fill_placeholders(
    conn: AsyncConnection, sha256: str, blurhash: str | None, dominant_color: str | None
) -> None:
    """Set the blob's placeholders where they are still missing (an older upload)."""
    await conn.execute(
        update(blobs)
        .where(blobs.c.sha256 == sha256, blobs.c.blurhash.is_(None))
        .values(blurhash=blurhash, dominant_color=dominant_color)
    )
