"""SQL for ``images``: one row per upload, pointing at its blob by SHA-256.

Reads join the blob (size, type, dimensions, placeholders) and the thumbnail row of the
instance's rendering parameters (``params``), so one query answers an ``Image``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import blobs, images, thumbnails
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
        thumbnails, sa.and_(thumbnails.c.sha256 == images.c.sha256, thumbnails.c.params == params)
    )
    return sa.select(*_IMAGE_COLUMNS, thumbnails.c.status, thumbnails.c.error).select_from(join)


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


async def get(conn: AsyncConnection, image_id: str, params: str) -> Image | None:
    """The image with its blob's facts and its thumbnail's state; None when there is none."""
    result = await conn.execute(_image_query(params).where(images.c.id == image_id))
    row = result.mappings().first()
    return row_to_image(row) if row is not None else None


async def lock(conn: AsyncConnection, image_id: str) -> RowMapping | None:
    """The image's own row, locked for the transaction (SQLite's writer lock does that)."""
    query = sa.select(images).where(images.c.id == image_id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    return (await conn.execute(query)).mappings().first()


async def insert(
    conn: AsyncConnection,
    *,
    image_id: str,
    owner_id: str | None,
    filename: str,
    sha256: str,
    created_at: datetime,
    delete_token_hash: str | None,
) -> None:
    values = dict(
        id=image_id,
        owner_id=owner_id,
        filename=filename,
        sha256=sha256,
        created_at=created_at,
        delete_token_hash=delete_token_hash,
    )
    await conn.execute(_INSERT, values)


_INSERT = sa.insert(images)
"""Built once, the row its parameters (see ``upsert.insert_or_ignore``)."""


async def delete(conn: AsyncConnection, image_id: str) -> None:
    """The image row goes; its tags go with it (``ON DELETE CASCADE``)."""
    await conn.execute(sa.delete(images).where(images.c.id == image_id))


def encode_cursor(created_at: datetime, image_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), image_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_CURSOR_LENGTH = 256
"""Our cursors are about 90 characters; anything much longer is not one of ours, and is refused
before it is decoded (a cursor of deeply nested JSON must never reach the parser)."""


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The keyset position in ``cursor``; 422 ``VALIDATION_ERROR`` for anything we did not make."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ValidationError("The cursor is not valid", field="cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, image_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(created)
        if not isinstance(image_id, str) or when.tzinfo is None:
            raise ValueError
        image_id.encode()  # a lone surrogate raises UnicodeEncodeError here, not in the driver
        return when, image_id
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValidationError("The cursor is not valid", field="cursor") from exc


async def list_for_owner(
    conn: AsyncConnection,
    owner_id: str,
    *,
    limit: int,
    cursor: str | None,
    params: str,
    filters: Sequence[Any] = (),
) -> tuple[list[Image], str | None]:
    """A page of the owner's images, newest first, by keyset cursor; ``filters`` are the
    clauses of :func:`chitram_core.db.tags.image_filters`."""
    query = _image_query(params).where(images.c.owner_id == owner_id, *filters)
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.where(
            sa.or_(
                images.c.created_at < created,
                sa.and_(images.c.created_at == created, images.c.id < last_id),
            )
        )
    query = query.order_by(images.c.created_at.desc(), images.c.id.desc()).limit(limit + 1)
    rows = (await conn.execute(query)).mappings().all()
    items = [row_to_image(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit and items:
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id)
    return items, next_cursor


async def ids_for_blob(conn: AsyncConnection, sha256: str) -> list[str]:
    """The ids of every image that uses the blob."""
    rows = await conn.execute(sa.select(images.c.id).where(images.c.sha256 == sha256))
    return [row[0] for row in rows]


async def owner(conn: AsyncConnection, image_id: str) -> tuple[bool, str | None]:
    """(the image exists, its owner id)."""
    row = (await conn.execute(sa.select(images.c.owner_id).where(images.c.id == image_id))).first()
    return (row is not None, row[0] if row is not None else None)


async def sha256_of(conn: AsyncConnection, image_id: str) -> str | None:
    row = (await conn.execute(sa.select(images.c.sha256).where(images.c.id == image_id))).first()
    return str(row[0]) if row is not None else None
