"""The one error envelope: Falcon's own errors and unexpected failures included."""

from __future__ import annotations

import logging
from pathlib import Path

import falcon
import falcon.asgi
import httpx
import pytest
from httpkit import Env, assert_error, make_settings

from chitram_core import Chitram
from chitram_falcon import ChitramApp, create_app

pytestmark = pytest.mark.anyio


async def test_unknown_route_is_404_not_found(env: Env) -> None:
    for path in ("/nope", "/api/v1/nope", "/api/v1/images/x/y/z"):
        assert_error(await env.client.get(path), 404, "NOT_FOUND")


async def test_wrong_method_is_405_with_allow(env: Env) -> None:
    resp = await env.client.put("/health")
    assert_error(resp, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in resp.headers["allow"]
    resp = await env.client.get("/api/v1/auth/login")
    assert_error(resp, 405, "METHOD_NOT_ALLOWED")
    resp = await env.client.post("/api/v1/images/00000000-0000-0000-0000-000000000000/file")
    assert_error(resp, 405, "METHOD_NOT_ALLOWED")


class Boom:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise RuntimeError("secret database password is hunter2")


class FalconTeapot:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise falcon.HTTPError(falcon.HTTP_502, description="upstream said hunter2")


def _extra(app: ChitramApp) -> None:
    app.add_route("/boom", Boom())
    app.add_route("/teapot", FalconTeapot())


async def test_unexpected_exception_is_500_without_its_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Chitram(make_settings(tmp_path), background=False) as chitram:
        app = create_app(chitram, extensions=[_extra])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            with caplog.at_level(logging.ERROR, logger="chitram_falcon"):
                resp = await client.get("/boom")
            detail = assert_error(resp, 500, "INTERNAL_ERROR")
            assert "hunter2" not in resp.text and "RuntimeError" not in resp.text
            assert detail["message"] == "Internal server error"
            assert "hunter2" in caplog.text  # logged for the operator
            resp = await client.get("/teapot")
            assert_error(resp, 500, "INTERNAL_ERROR")
            assert "hunter2" not in resp.text


async def test_extensions_mount_routes_that_see_the_chitram(tmp_path: Path) -> None:
    class Count:
        def __init__(self, app: ChitramApp) -> None:
            self.app = app

        async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
            report = await self.app.chitram.health()
            resp.media = {"db": report.database}

    async with Chitram(make_settings(tmp_path), background=False) as chitram:
        app = create_app(chitram, extensions=[lambda a: a.add_route("/x/db", Count(a))])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            assert (await client.get("/x/db")).json() == {"db": "connected"}


async def test_http_errors_have_json_content_type_and_no_html(env: Env) -> None:
    resp = await env.client.get("/does-not-exist", headers={"Accept": "text/html"})
    assert resp.headers["content-type"].startswith("application/json")
    assert "<" not in resp.text
