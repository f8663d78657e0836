"""SQL for tags, image tags and tag search/filtering (SQLAlchemy Core, SQLite and PostgreSQL).

Tag names arrive here already normalised and validated (``chitram_core.tags.names``): lower
case, only letters, digits, spaces and hyphens, so they never hold a LIKE or GLOB wildcard.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import image_tags, images, tags, utcnow
from chitram_core.models import ImageTag, PopularTag, SuggestedTag, Tag


def prefix_match(column: Any, prefix: str, dialect: str) -> Any:
    """``column`` starts with ``prefix``, in the form each dialect answers from a btree index:
    GLOB on SQLite (binary collation), LIKE on PostgreSQL (``varchar_pattern_ops`` index)."""
    if dialect == "sqlite":
        return column.op("GLOB")(prefix + "*")
    return column.like(prefix + "%")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _tag(row: Any) -> Tag:
    return Tag(id=row.id, name=row.name, category=row.category, created_at=row.created_at)


async def tags_of_image(conn: AsyncConnection, image_id: str) -> list[ImageTag]:
    rows = await conn.execute(
        select(tags.c.name, tags.c.category, image_tags.c.source, image_tags.c.confidence)
        .select_from(image_tags.join(tags, tags.c.id == image_tags.c.tag_id))
        .where(image_tags.c.image_id == image_id)
        .order_by(tags.c.name)
    )
    return [
        ImageTag(name=r.name, category=r.category, source=r.source, confidence=r.confidence)
        for r in rows
    ]


async def ensure_tag(conn: AsyncConnection, name: str, category: str | None) -> str:
    """The tag's id, inserting the tag when it is new (a concurrent insert is caught)."""
    found = (await conn.execute(select(tags.c.id).where(tags.c.name == name))).first()
    if found is not None:
        return str(found[0])
    tag_id = str(uuid.uuid4())
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(tags).values(
                    id=tag_id, name=name, category=category, image_count=0, created_at=utcnow()
                )
            )
    except IntegrityError:
        found = (await conn.execute(select(tags.c.id).where(tags.c.name == name))).first()
        assert found is not None
        return str(found[0])
    return tag_id


async def tag_on_image(conn: AsyncConnection, image_id: str, name: str) -> RowMapping | None:
    query = (
        select(image_tags.c.tag_id, image_tags.c.source)
        .select_from(image_tags.join(tags, tags.c.id == image_tags.c.tag_id))
        .where(and_(image_tags.c.image_id == image_id, tags.c.name == name))
    )
    return (await conn.execute(query)).mappings().first()


async def _attach(
    conn: AsyncConnection, image_id: str, tag_id: str, source: str, confidence: int | None
) -> None:
    await conn.execute(
        insert(image_tags).values(
            image_id=image_id,
            tag_id=tag_id,
            source=source,
            confidence=confidence,
            created_at=utcnow(),
        )
    )


async def attach_user_tag(conn: AsyncConnection, image_id: str, tag_id: str) -> bool:
    """Put the tag on the image; False when it is there already (added concurrently) or the
    image has just gone. Nothing else of the transaction is undone then."""
    try:
        async with conn.begin_nested():
            await _attach(conn, image_id, tag_id, "user", None)
    except IntegrityError:
        return False
    return True


async def ensure_tags(conn: AsyncConnection, chosen: Sequence[SuggestedTag]) -> list[str]:
    """The ids of ``chosen``'s tags (in its order), new ones inserted in name order: two
    transactions inserting the same new names wait for each other in one order only."""
    ids = {s.name: await ensure_tag(conn, s.name, s.category) for s in sorted(chosen, key=_name)}
    return [ids[s.name] for s in chosen]


def _name(suggested: SuggestedTag) -> str:
    return suggested.name


async def lock_tags(conn: AsyncConnection, image_id: str, tag_ids: Sequence[str] = ()) -> None:
    """Hold the rows of the image's tags and of ``tag_ids``, taken in id order, before any of
    their counts change (PostgreSQL; SQLite's writer lock already serialises). The count
    triggers then find every row they update held already, so transactions changing several
    tags' counts at once (an image's delete, its AI tags replaced) all take tag rows in one
    order and cannot deadlock, whatever order the cascade or the inserts visit them in."""
    if conn.dialect.name != "postgresql":
        return
    wanted: Any = tags.c.id.in_(
        select(image_tags.c.tag_id).where(image_tags.c.image_id == image_id)
    )
    if tag_ids:
        wanted = or_(wanted, tags.c.id.in_(list(tag_ids)))
    await conn.execute(select(tags.c.id).where(wanted).order_by(tags.c.id).with_for_update())


async def attach_ai_tags(
    conn: AsyncConnection, image_id: str, chosen: Sequence[SuggestedTag], tag_ids: Sequence[str]
) -> bool:
    """Put every chosen tag (``tag_ids``: their ids, from :func:`ensure_tags`) on the image,
    all or none; False (none) when the image has just gone."""
    try:
        async with conn.begin_nested():
            for s, tag_id in zip(chosen, tag_ids, strict=True):
                await _attach(conn, image_id, tag_id, "ai", s.confidence)
    except IntegrityError:
        return False
    return True


async def detach_tag(conn: AsyncConnection, image_id: str, tag_id: str) -> None:
    await conn.execute(
        delete(image_tags).where(
            and_(image_tags.c.image_id == image_id, image_tags.c.tag_id == tag_id)
        )
    )


async def detach_ai_tags(conn: AsyncConnection, image_id: str) -> None:
    await conn.execute(
        delete(image_tags).where(
            and_(image_tags.c.image_id == image_id, image_tags.c.source == "ai")
        )
    )


def _on_owners_images(owner_id: str) -> Any:
    """The tag is on at least one image of ``owner_id``."""
    return exists().where(
        and_(
            image_tags.c.tag_id == tags.c.id,
            image_tags.c.image_id == images.c.id,
            images.c.owner_id == owner_id,
        )
    )


async def all_tags(conn: AsyncConnection, limit: int, *, owner_id: str | None = None) -> list[Tag]:
    """Alphabetical; with ``owner_id``, only tags on that user's images."""
    query = select(tags).order_by(tags.c.name).limit(limit)
    if owner_id is not None:
        query = query.where(_on_owners_images(owner_id))
    rows = await conn.execute(query)
    return [_tag(r) for r in rows]


async def popular_tags(
    conn: AsyncConnection, limit: int, *, owner_id: str | None = None
) -> list[PopularTag]:
    """Most used first. Globally by the trigger-kept ``image_count`` (an index walk, no GROUP
    BY); for one owner, counted over that owner's images (``ix_images_owner_created``)."""
    if owner_id is None:
        rows = await conn.execute(
            select(tags.c.name, tags.c.category, tags.c.image_count)
            .where(tags.c.image_count > 0)
            .order_by(tags.c.image_count.desc(), tags.c.name)
            .limit(limit)
        )
        return [PopularTag(name=r.name, category=r.category, count=r.image_count) for r in rows]
    count = func.count().label("n")
    rows = await conn.execute(
        select(tags.c.name, tags.c.category, count)
        .select_from(
            images.join(image_tags, image_tags.c.image_id == images.c.id).join(
                tags, tags.c.id == image_tags.c.tag_id
            )
        )
        .where(images.c.owner_id == owner_id)
        .group_by(tags.c.id, tags.c.name, tags.c.category)
        .order_by(count.desc(), tags.c.name)
        .limit(limit)
    )
    return [PopularTag(name=r.name, category=r.category, count=r.n) for r in rows]


async def search_tags(
    conn: AsyncConnection, prefix: str, limit: int, *, owner_id: str | None = None
) -> list[Tag]:
    query = (
        select(tags)
        .where(prefix_match(tags.c.name, prefix, conn.dialect.name))
        .order_by(tags.c.name)
        .limit(limit)
    )
    if owner_id is not None:
        query = query.where(_on_owners_images(owner_id))
    rows = await conn.execute(query)
    return [_tag(r) for r in rows]


async def lock_image(conn: AsyncConnection, image_id: str) -> None:
    """Hold the image's row until the transaction ends (PostgreSQL; SQLite's writer lock
    already serialises), so two concurrent adds cannot both take the last free tag slot."""
    await conn.execute(select(images.c.id).where(images.c.id == image_id).with_for_update())


async def count_on_image(conn: AsyncConnection, image_id: str, *, source: str | None = None) -> int:
    query = select(func.count()).select_from(image_tags).where(image_tags.c.image_id == image_id)
    if source is not None:
        query = query.where(image_tags.c.source == source)
    return int((await conn.execute(query)).scalar_one())


async def image_filters(
    conn: AsyncConnection,
    *,
    tag_names: Sequence[str],
    filename_part: str | None,
    tag_prefix: str | None,
) -> list[Any] | None:
    """WHERE clauses on ``images`` for ``?tag=`` (all of them) and ``?q=``; None when nothing
    can match (a tag nobody uses), so the caller can skip the query."""
    clauses: list[Any] = []
    if tag_names:
        found = dict(
            (
                await conn.execute(
                    select(tags.c.name, tags.c.id).where(tags.c.name.in_(set(tag_names)))
                )
            ).all()
        )
        if len(found) < len(set(tag_names)):
            return None
        for name in sorted(set(tag_names)):
            clauses.append(
                exists().where(
                    and_(image_tags.c.image_id == images.c.id, image_tags.c.tag_id == found[name])
                )
            )
    alternatives: list[Any] = []
    if filename_part:
        pattern = f"%{_like_escape(filename_part)}%"
        alternatives.append(func.lower(images.c.filename).like(pattern, escape="\\"))
    if tag_prefix:
        matching = select(tags.c.id).where(prefix_match(tags.c.name, tag_prefix, conn.dialect.name))
        alternatives.append(
            exists().where(
                and_(image_tags.c.image_id == images.c.id, image_tags.c.tag_id.in_(matching))
            )
        )
    if alternatives:
        clauses.append(or_(*alternatives))
    return clauses
