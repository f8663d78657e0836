"""Who owns the Chitram instance: the app (ASGI lifespan) or the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from httpkit import make_settings, png_bytes

from chitram_core import Chitram
from chitram_falcon import create_app

pytestmark = pytest.mark.anyio


class Lifespan:
    """Drives an ASGI app's lifespan protocol, as a server would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app, self.from_server = anyio.create_memory_object_stream[dict[str, Any]](4)
        self.to_server, self.from_app = anyio.create_memory_object_stream[dict[str, Any]](4)

    async def run(self) -> None:
        await self.app(
            {"type": "lifespan", "asgi": {"version": "3.0"}},
            self.from_server.receive,
            self.to_server.send,
        )

    async def send(self, event_type: str) -> dict[str, Any]:
        await self.to_app.send({"type": event_type})
        return await self.from_app.receive()


async def test_app_opens_and_closes_its_own_chitram_in_the_lifespan(tmp_path: Path) -> None:
    app = create_app(settings=make_settings(tmp_path))
    lifespan = Lifespan(app)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lifespan.run)
        assert (await lifespan.send("lifespan.startup"))["type"] == "lifespan.startup.complete"
        assert app.handle.is_open
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            resp = await client.post(
                "/api/v1/auth/register",
                json={"email": "a@example.com", "password": "correct horse battery"},
            )
            assert resp.status_code == 201
            token = resp.json()["access_token"]
            up = await client.post(
                "/api/v1/images/upload",
                files={"file": ("a.png", png_bytes(), "image/png")},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert up.status_code == 201
            # Let the background thumbnail job finish: cancelling it mid-query at shutdown
            # leaves an aiosqlite close task behind (a chitram_core issue, reported).
            with anyio.fail_after(10):
                await _thumbnail_ready(client, up.json()["id"])
        assert (await lifespan.send("lifespan.shutdown"))["type"] == "lifespan.shutdown.complete"
        assert not app.handle.is_open
    assert (tmp_path / "chitram.db").exists()


async def test_a_given_chitram_is_left_open_for_its_host(tmp_path: Path) -> None:
    async with Chitram(make_settings(tmp_path)) as chitram:
        app = create_app(chitram)
        lifespan = Lifespan(app)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lifespan.run)
            await lifespan.send("lifespan.startup")
            await lifespan.send("lifespan.shutdown")
        assert app.handle.is_open
        assert (await chitram.health()).database == "connected"


async def test_production_with_the_default_secret_refuses_to_build_the_app(
    tmp_path: Path,
) -> None:
    from chitram_core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CHITRAM_JWT_SECRET"):
        create_app(settings=make_settings(tmp_path, env="production"))


async def _thumbnail_ready(client: httpx.AsyncClient, image_id: str) -> None:
    for _ in range(200):
        if (await client.get(f"/api/v1/images/{image_id}")).json()["thumbnail_ready"]:
            return
        await anyio.sleep(0.05)
    raise AssertionError("the background thumbnail was never made")
