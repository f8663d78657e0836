"""The image listing's query parameters, parsed and checked once for every surface that lists.

``GET /api/v1/images`` and the web UI's ``GET /ui/api/images`` take the same parameters and
refuse the same values the same way (docs/http-api.md):

- ``limit``: an integer from 1 to 100 (422 ``VALIDATION_ERROR`` otherwise, ``field: limit``);
  absent or blank, the surface's default page size;
- ``cursor``: the previous page's ``next_cursor``, passed to the SDK as it came (which refuses
  one it did not make);
- ``tag`` (repeatable): images with every one of these tags, each checked by the SDK's tag rules;
- ``q``: a filename substring or tag prefix.
"""

from __future__ import annotations

from typing import Any

import attrs
import falcon.asgi

from chitram_core import Page, to_json
from chitram_core.errors import ValidationError, check_limit

DEFAULT_LIMIT = 20


@attrs.frozen
class ListQuery:
    """One listing request's parameters, checked."""

    limit: int
    cursor: str | None
    tags: list[str] | None
    query: str | None


def list_query(req: falcon.asgi.Request, *, default_limit: int = DEFAULT_LIMIT) -> ListQuery:
    """The listing parameters of ``req``; :class:`ValidationError` for a bad ``limit``."""
    raw_limit = req.get_param("limit") or None
    limit = default_limit
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ValidationError("limit must be an integer", field="limit") from None
    return ListQuery(
        limit=check_limit(limit),
        cursor=req.get_param("cursor") or None,
        tags=req.get_param_as_list("tag") or None,
        query=req.get_param("q") or None,
    )


def page_json(page: Page) -> dict[str, Any]:
    """A listed page as both surfaces answer it: ``{items, next_cursor}``."""
    return {"items": [to_json(image) for image in page.items], "next_cursor": page.next_cursor}
