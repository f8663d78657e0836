"""``images.list(tags=, query=)``: the caller's input checked and turned into SQL filters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db import tags as sql
from chitram_core.errors import ValidationError
from chitram_core.tags import names

MAX_FILTER_TAGS = 10
MAX_QUERY = 200


async def image_filters(
    conn: AsyncConnection, tags: Sequence[str] | None, query: str | None
) -> list[Any] | None:
    """WHERE clauses on ``images``: every tag in ``tags``, and ``query`` as a case-insensitive
    filename substring or tag-name prefix. None when nothing can match."""
    if isinstance(tags, str):
        tags = [tags]
    tag_names = [names.normalize(t, field="tag") for t in (tags or [])]
    if len(tag_names) > MAX_FILTER_TAGS:
        raise ValidationError(f"At most {MAX_FILTER_TAGS} tags can be combined", field="tag")
    if query is not None and not isinstance(query, str):
        raise ValidationError("q must be a string", field="q")
    text = (query or "").strip().lower()
    if len(text) > MAX_QUERY:
        raise ValidationError(f"q has at most {MAX_QUERY} characters", field="q")
    return await sql.image_filters(
        conn,
        tag_names=tag_names,
        filename_part=text or None,
        tag_prefix=names.search_prefix(text) if text else None,
    )
