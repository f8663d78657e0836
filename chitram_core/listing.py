"""Listing an owner's images, newest first, by keyset cursor, with tag and name filters."""

from __future__ import annotations

from collections.abc import Sequence

from chitram_core.db import Database, images
from chitram_core.errors import check_limit
from chitram_core.models import Page, Principal
from chitram_core.tags.search import image_filters


class Listing:
    def __init__(self, database: Database, params_key: str) -> None:
        self.db = database
        self.params_key = params_key

    async def list(
        self,
        owner: Principal,
        *,
        limit: int = 20,
        cursor: str | None = None,
        tags: Sequence[str] | None = None,
        query: str | None = None,
    ) -> Page:
        """The owner's images, newest first, by keyset cursor (stable under inserts); only
        those with every tag in ``tags`` and, with ``query``, a filename containing it or a
        tag starting with it."""
        check_limit(limit)
        async with self.db.connect() as conn:
            filters = await image_filters(conn, tags, query)
            if filters is None:
                return Page(items=(), next_cursor=None)
            items, next_cursor = await images.list_for_owner(
                conn,
                owner.user_id,
                limit=limit,
                cursor=cursor,
                params=self.params_key,
                filters=filters,
            )
        return Page(items=tuple(items), next_cursor=next_cursor)
