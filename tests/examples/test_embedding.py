"""One Chitram instance mounted in a Starlette app and in a plain ASGI app."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from examplekit import load_example
from PIL import Image as PILImage

from chitram_core import Settings

pytestmark = pytest.mark.anyio


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, upload_rate_limit=None, auth_rate_limit=None, web_ui=False)


def _png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (30, 20), "green").save(buffer, "PNG")
    return buffer.getvalue()


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, as a server would run it, and a client for it."""
    send_to_app, app_receive = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_send, receive_from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            app,
            {"type": "lifespan", "asgi": {"version": "3.0"}},
            app_receive.receive,
            app_send.send,
        )
        await send_to_app.send({"type": "lifespan.startup"})
        assert (await receive_from_app.receive())["type"] == "lifespan.startup.complete"
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://host"
            ) as client:
                yield client
        finally:
            await send_to_app.send({"type": "lifespan.shutdown"})
            assert (await receive_from_app.receive())["type"] == "lifespan.shutdown.complete"


async def _upload_and_read(client: httpx.AsyncClient) -> dict[str, Any]:
    reg = await client.post(
        "/api/v1/auth/register", json={"email": "host@example.com", "password": "correct horse"}
    )
    assert reg.status_code == 201, reg.text
    token = reg.json()["access_token"]
    up = await client.post(
        "/api/v1/images/upload",
        files={"file": ("a.png", _png(), "image/png")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert up.status_code == 201, up.text
    image: dict[str, Any] = up.json()
    assert (await client.get(image["url"])).content == _png()
    # Wait for the thumbnail so no background job is cancelled mid-query at shutdown.
    assert (await client.get(image["thumbnail_url"])).status_code == 200
    return image


async def test_chitram_mounted_in_starlette(tmp_path: Path) -> None:
    module = load_example("starlette_host")
    app = module.build(_settings(tmp_path))
    async with served(app) as client:
        home = await client.get("/")
        assert home.status_code == 200 and "My site" in home.text
        image = await _upload_and_read(client)
        page = await client.get(f"/gallery/{image['id']}")
        assert page.status_code == 200 and image["url"] in page.text
        missing = await client.get("/gallery/not-an-id")
        assert missing.status_code == 404
        assert missing.json()["detail"]["code"] == "IMAGE_NOT_FOUND"
        health = await client.get("/health")
        assert health.status_code == 200
        not_found = await client.get("/api/v1/nothing-here")
        assert not_found.json()["detail"]["code"] == "NOT_FOUND"


async def test_chitram_in_a_plain_asgi_app(tmp_path: Path) -> None:
    module = load_example("plain_asgi_host")
    app = module.Host(_settings(tmp_path))
    async with served(app) as client:
        hello = await client.get("/hello")
        assert hello.json() == {"hello": "from the host", "chitram": "healthy"} or hello.json()[
            "chitram"
        ] in {"healthy", "degraded"}
        await _upload_and_read(client)
        assert (await client.get("/health/live")).status_code == 200
