"""Resumable uploads over HTTP: the tus 1.0.0 protocol at ``/api/v1/uploads``.

Extensions: creation, creation-with-upload, termination, expiration and checksum (sha1,
sha256). Every answer carries ``Tus-Resumable: 1.0.0``; a request without it (OPTIONS
excepted) is refused with 412. The resources parse headers, call ``chitram.uploads`` and
render; the protocol's state lives in the SDK (docs/http-api.md, "Resumable uploads").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime

import falcon
import falcon.asgi

from chitram_core import Chitram
from chitram_core.errors import InvalidRequest
from chitram_core.models import Principal
from chitram_core.resumable import CHECKSUM_ALGORITHMS, Checksum, ResumableUpload
from chitram_falcon.context import (
    WRITE,
    ChitramHandle,
    authenticate,
    limit_upload,
)
from chitram_falcon.resources.images import _capped

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
CHUNK_TYPE = "application/offset+octet-stream"
UPLOADS = "/api/v1/uploads"


class _VersionRequired(InvalidRequest):
    status = 412
    default_message = "Send 'Tus-Resumable: 1.0.0': this server speaks tus 1.0.0"
    http_headers = {"Tus-Version": TUS_VERSION}


class _NotAChunk(InvalidRequest):
    status = 415
    default_message = f"A chunk's Content-Type must be {CHUNK_TYPE}"


def _tus(req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
    """The headers of every tus answer; 412 when the request is not tus 1.0.0."""
    resp.set_header("Tus-Resumable", TUS_VERSION)
    resp.cache_control = ["no-store"]
    if req.get_header("Tus-Resumable") != TUS_VERSION:
        raise _VersionRequired()


def _int_header(req: falcon.asgi.Request, name: str) -> int:
    raw = req.get_header(name)
    if raw is None or not raw.strip().isdigit():
        raise InvalidRequest(f"{name} must be a non-negative integer", field=name)
    return int(raw)


def _filename(metadata: str | None) -> str | None:
    """``filename`` from ``Upload-Metadata`` (``key base64,key base64``)."""
    if not metadata:
        return None
    for pair in metadata.split(","):
        key, _, value = pair.strip().partition(" ")
        if key != "filename" or not value:
            continue
        try:
            return base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(
                "Upload-Metadata values must be base64", field="Upload-Metadata"
            ) from exc
    return None


def _checksum(req: falcon.asgi.Request) -> Checksum | None:
    header = req.get_header("Upload-Checksum")
    return Checksum.parse(header) if header else None


def _http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def _state(resp: falcon.asgi.Response, upload: ResumableUpload) -> None:
    resp.set_header("Upload-Offset", str(upload.offset))
    resp.set_header("Upload-Expires", _http_date(upload.expires_at))
    if upload.image_id is not None:
        resp.set_header("Chitram-Image-Id", upload.image_id)


async def _body(req: falcon.asgi.Request, chitram: Chitram) -> AsyncIterator[bytes]:
    """The chunk as it arrives, cut with 408 when idle or slow (a client that disconnects
    ends it: what arrived is kept, as tus asks)."""
    settings = chitram.settings
    cap = settings.max_resumable_bytes
    async for chunk in _capped(
        req.stream.__aiter__(),
        cap,
        cap,
        idle=settings.upload_idle_timeout,
        total_time=settings.upload_timeout,
    ):
        yield chunk


class _Base:
    def __init__(self, handle: ChitramHandle, *, base: str = UPLOADS) -> None:
        self.handle = handle
        self.base = base
        """Where the uploads live (the ``Location`` of a new one is under it)."""

    async def _caller(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> Principal | None:
        """Who sends (the bearer token; the web UI overrides this with its session)."""
        chitram = self.handle.chitram
        required = not chitram.settings.allow_anonymous_uploads
        return await authenticate(req, chitram, required=required, scope=WRITE)


class UploadsResource(_Base):
    """OPTIONS (what the server supports) and POST (create, with an optional first chunk)."""

    async def on_options(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        settings = self.handle.chitram.settings
        resp.status = 204
        resp.set_header("Tus-Resumable", TUS_VERSION)
        resp.set_header("Tus-Version", TUS_VERSION)
        resp.set_header("Tus-Extension", TUS_EXTENSIONS)
        resp.set_header("Tus-Max-Size", str(settings.max_resumable_bytes))
        resp.set_header("Tus-Checksum-Algorithm", ",".join(CHECKSUM_ALGORITHMS))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _tus(req, resp)
        chitram = self.handle.chitram
        principal = await self._caller(req, resp)
        if req.get_header("Upload-Defer-Length") is not None:
            raise InvalidRequest("Upload-Length is required", field="Upload-Length")
        length = _int_header(req, "Upload-Length")
        filename = _filename(req.get_header("Upload-Metadata"))
        await limit_upload(req, resp, chitram, principal)
        first = None
        checksum = None
        if (req.content_length or 0) > 0 or req.get_header("Transfer-Encoding"):
            if (req.content_type or "").split(";")[0].strip() != CHUNK_TYPE:
                raise _NotAChunk()
            first, checksum = _body(req, chitram), _checksum(req)
        upload = await chitram.uploads.create(
            length, owner=principal, filename=filename, first_chunk=first, checksum=checksum
        )
        resp.status = 201
        resp.location = f"{self.base}/{upload.id}"
        _state(resp, upload)


class UploadResource(_Base):
    """HEAD (where it stands), PATCH (the next chunk), DELETE (termination)."""

    async def on_options(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, upload_id: str
    ) -> None:
        resp.status = 204
        resp.set_header("Tus-Resumable", TUS_VERSION)
        resp.set_header("Tus-Version", TUS_VERSION)

    async def on_head(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, upload_id: str
    ) -> None:
        _tus(req, resp)
        principal = await self._caller(req, resp)
        upload = await self.handle.chitram.uploads.status(upload_id, owner=principal)
        resp.status = 200
        _state(resp, upload)
        resp.set_header("Upload-Length", str(upload.length))
        if upload.filename:
            encoded = base64.b64encode(upload.filename.encode()).decode()
            resp.set_header("Upload-Metadata", f"filename {encoded}")

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, upload_id: str
    ) -> None:
        _tus(req, resp)
        chitram = self.handle.chitram
        principal = await self._caller(req, resp)
        if (req.content_type or "").split(";")[0].strip() != CHUNK_TYPE:
            raise _NotAChunk()
        offset = _int_header(req, "Upload-Offset")
        checksum = _checksum(req)
        upload = await chitram.uploads.append(
            upload_id, offset, _body(req, chitram), owner=principal, checksum=checksum
        )
        resp.status = 204
        _state(resp, upload)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, upload_id: str
    ) -> None:
        _tus(req, resp)
        principal = await self._caller(req, resp)
        await self.handle.chitram.uploads.cancel(upload_id, owner=principal)
        resp.status = 204
