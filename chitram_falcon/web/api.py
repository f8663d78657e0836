"""The UI's own JSON endpoints, authenticated by the session cookie (which the page's
JavaScript cannot read, so it cannot send a bearer token) and CSRF-checked when they change
anything. They answer in the API's error envelope and call the same SDK and upload code."""

from __future__ import annotations

import falcon.asgi

from chitram_core import Principal
from chitram_core.errors import Unauthorized
from chitram_falcon.listing import list_query, page_json
from chitram_falcon.resources.images import UploadResource
from chitram_falcon.resources.upload_url import UploadUrlResource
from chitram_falcon.resources.uploads import UploadResource as ResumableResource
from chitram_falcon.resources.uploads import UploadsResource
from chitram_falcon.web.ui import Visit, WebUI


async def _signed_in(
    ui: WebUI, req: falcon.asgi.Request, resp: falcon.asgi.Response
) -> tuple[Visit, Principal]:
    visit = await ui.visit(req, resp)
    if visit.principal is None:
        raise Unauthorized("Your session has ended: sign in again")
    return visit, visit.principal


class ImageListApi:
    """GET: one page of the visitor's images, ``{items, next_cursor}`` as the API answers."""

    def __init__(self, ui: WebUI) -> None:
        self.ui = ui

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _, principal = await _signed_in(self.ui, req, resp)
        query = list_query(req, default_limit=self.ui.page_size)  # the API's parameters
        page = await self.ui.chitram.images.list(
            principal,
            limit=query.limit,
            cursor=query.cursor,
            tags=query.tags,
            query=query.query,
        )
        resp.media = page_json(page)
        resp.set_header("Cache-Control", "private, no-store")


class UploadApi:
    """POST multipart ``file``: the API's upload (the same wait for room, then the same checks
    in the same order, before the body is read), for the session's user, with the CSRF token
    in ``X-CSRF-Token``."""

    def __init__(self, ui: WebUI) -> None:
        self.ui = ui
        self.upload = UploadResource(ui.handle)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self.ui.check_origin(req)  # headers only: before the wait for room
        await self.upload.admit(req, resp, lambda: _uploader(self.ui, req, resp))

    async def _uploader(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> Principal:
        visit = await self.ui.visit(req, resp)
        self.ui.check_token(visit, req.get_header("X-CSRF-Token"))
        if visit.principal is None:
            raise Unauthorized("Your session has ended: sign in again")
        return visit.principal


class _SessionCaller:
    """The tus resources' caller from the session cookie, CSRF-checked (``X-CSRF-Token``), for
    every method: tus-js-client sends the same headers on each request."""

    ui: WebUI

    async def _caller(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> Principal:
        self.ui.check_origin(req)
        visit = await self.ui.visit(req, resp)
        self.ui.check_token(visit, req.get_header("X-CSRF-Token"))
        if visit.principal is None:
            raise Unauthorized("Your session has ended: sign in again")
        return visit.principal


class ResumableUploadsApi(_SessionCaller, UploadsResource):
    """The API's tus creation endpoint for the session's user (files over 8 MiB)."""

    def __init__(self, ui: WebUI, base: str) -> None:
        super().__init__(ui.handle, base=base)
        self.ui = ui


class ResumableUploadApi(_SessionCaller, ResumableResource):
    """HEAD, PATCH and DELETE of one of the session user's resumable uploads."""

    def __init__(self, ui: WebUI, base: str) -> None:
        super().__init__(ui.handle, base=base)
        self.ui = ui


async def _uploader(ui: WebUI, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> Principal:
    """The session's user, after the CSRF check: who uploads through the UI."""
    visit = await ui.visit(req, resp)
    ui.check_token(visit, req.get_header("X-CSRF-Token"))
    if visit.principal is None:
        raise Unauthorized("Your session has ended: sign in again")
    return visit.principal


class UploadUrlApi:
    """POST ``{"url": ...}``: the API's upload by URL, for the session's user, with the CSRF
    token in ``X-CSRF-Token``."""

    def __init__(self, ui: WebUI) -> None:
        self.ui = ui
        self.upload = UploadUrlResource(ui.handle)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self.ui.check_origin(req)
        await self.upload.admit(req, resp, lambda: _uploader(self.ui, req, resp))
