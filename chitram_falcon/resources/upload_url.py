"""POST /api/v1/images/upload-url: an image fetched from a URL, as an upload."""

from __future__ import annotations

import falcon
import falcon.asgi

from chitram_core import Principal, to_json
from chitram_core.limits.slots import Room
from chitram_falcon.context import (
    limit_upload,
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
        identity = await limit_upload(req, resp, chitram, principal)
        chitram.upload_slots.check_room()
        async with chitram.upload_slots.on_arrival(room, identity) as arrived:
            image = await chitram.images.upload_from_url(
                url, owner=principal, max_bytes=settings.max_upload_bytes, arrived=arrived
            )
        resp.status = 201
        resp.media = to_json(image)
        resp.location = image.url.removesuffix("/file")
        resp.cache_control = ["no-store"]
