"""POST /api/v1/images/upload-url: an image fetched from a URL, as an upload."""

from __future__ import annotations

import falcon
import falcon.asgi

from chitram_core import Principal, to_json
from chitram_core.limits.slots import Room
from chitram_falcon.context import (
    client_bucket,
    rate_limit,
    read_fields,
    required_str,
)
from chitram_falcon.resources.images import UploadAdmission


class UploadUrlResource(UploadAdmission):
    """``{"url": ...}`` → 201 Image. The same front door as a multipart upload: room for one more
    upload first (503), the caller (401), the upload rate limit (429, the same budget as
    multipart uploads) and the per-user count of uploads in progress. The fetch itself is
    guarded (``URL_NOT_ALLOWED``, ``FETCH_FAILED``, ``FILE_TOO_LARGE``); the upload slot is taken
    once the whole body has arrived, as for multipart uploads, so a slow remote server never
    holds one."""

    async def accept(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        principal: Principal | None,
        room: Room | None = None,
    ) -> None:
        chitram = self.handle.chitram
        settings = chitram.settings
        fields = await read_fields(req)
        url = required_str(fields, "url")
        identity = (
            f"user:{principal.user_id}" if principal else f"ip:{client_bucket(req, settings)}"
        )
        await rate_limit(resp, chitram, settings.upload_rate_limit, [("upload", identity)])
        chitram.upload_slots.check_room()
        slots = chitram.upload_slots
        held: list[bool] = []

        async def arrived() -> None:
            await slots.take(room, identity=identity)
            held.append(True)

        async with slots.per_identity(identity):
            try:
                image = await chitram.images.upload_from_url(
                    url, owner=principal, max_bytes=settings.max_upload_bytes, arrived=arrived
                )
            finally:
                if held:
                    slots.release(identity)
        resp.status = 201
        resp.media = to_json(image)
        resp.location = image.url.removesuffix("/file")
        resp.cache_control = ["no-store"]
