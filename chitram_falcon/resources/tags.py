"""The tag routes (docs/http-api.md#tags): an image's tags, tag listing and search, auto-tagging."""

from __future__ import annotations

import falcon
import falcon.asgi

from chitram_core import to_json
from chitram_core.errors import ValidationError, check_limit
from chitram_falcon.context import READ, TAGS, ChitramHandle, authenticate, rate_limit, read_fields

NO_STORE = ["private, no-store"]


def int_param(req: falcon.asgi.Request, name: str, default: int, high: int = 100) -> int:
    raw = req.get_param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer", field=name) from None
    return check_limit(value, high=high, field=name)


class ImageTagsResource:
    """GET (anyone) and POST (the owner) /api/v1/images/{id}/tags."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        chitram = self.handle.chitram
        await authenticate(req, chitram, required=False, scope=READ)
        resp.media = to_json(await chitram.tags.for_image(image_id))

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=True, scope=TAGS)
        assert principal is not None
        fields = await read_fields(req)
        if "tag" not in fields:
            raise ValidationError("The field 'tag' is required", field="tag")
        tag = await chitram.tags.add(
            image_id, fields["tag"], principal=principal, category=fields.get("category")
        )
        resp.status = 201
        resp.media = to_json(tag)


class ImageTagResource:
    """DELETE /api/v1/images/{id}/tags/{name} (the owner)."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str, name: str
    ) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=True, scope=TAGS)
        assert principal is not None
        await chitram.tags.remove(image_id, name, principal=principal)
        resp.status = 204


class AutoTagResource:
    """POST /api/v1/images/{id}/ai-tag (the owner): run the taggers now."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=True, scope=TAGS)
        assert principal is not None
        # Each call decodes the image and calls a paid model: limited like uploads.
        await rate_limit(
            resp,
            chitram,
            chitram.settings.ai_tag_rate_limit,
            [("ai-tag", f"user:{principal.user_id}")],
        )
        resp.media = to_json(await chitram.tags.auto_tag(image_id, principal=principal))
        resp.cache_control = NO_STORE


class TagsResource:
    """GET /api/v1/tags: alphabetical."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=False, scope=READ)
        resp.media = to_json(
            await chitram.tags.all(int_param(req, "limit", 20), principal=principal)
        )
        resp.cache_control = NO_STORE


class PopularTagsResource:
    """GET /api/v1/tags/popular: most used first."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=False, scope=READ)
        resp.media = to_json(
            await chitram.tags.popular(int_param(req, "limit", 20), principal=principal)
        )
        resp.cache_control = NO_STORE


class TagSearchResource:
    """GET /api/v1/tags/search?q=: case-insensitive name prefix."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=False, scope=READ)
        q = req.get_param("q") or ""
        if len(q) > 50:
            raise ValidationError("q has at most 50 characters", field="q")
        limit = int_param(req, "limit", 10)
        resp.media = to_json(await chitram.tags.search(q, limit, principal=principal))
        resp.cache_control = NO_STORE
