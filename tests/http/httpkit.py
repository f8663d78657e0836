"""Helpers for the HTTP tests: images, an app over a real Chitram on temporary SQLite + files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
from imagekit import PASSWORD, jpeg_bytes, make_settings, png_bytes  # noqa: F401 - re-exported

from chitram_core import Chitram
from chitram_falcon import ChitramApp, create_app


@attrs.define
class Env:
    chitram: Chitram
    app: ChitramApp
    client: httpx.AsyncClient
    _counter: int = 0

    async def register(self, email: str | None = None) -> str:
        """A new user's access token."""
        if email is None:
            self._counter += 1
            email = f"user{self._counter}@example.com"
        resp = await self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert resp.status_code == 201, resp.text
        token: str = resp.json()["access_token"]
        return token

    async def upload(
        self,
        token: str | None,
        data: bytes | None = None,
        filename: str = "picture.png",
        content_type: str = "image/png",
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post(
            "/api/v1/images/upload",
            files={"file": (filename, png_bytes() if data is None else data, content_type)},
            headers=headers,
        )

    async def uploaded(
        self, token: str | None, data: bytes | None = None, **kw: Any
    ) -> dict[str, Any]:
        resp = await self.upload(token, data, **kw)
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def open_env(data_dir: Path, **overrides: Any) -> AsyncIterator[Env]:
    # No background jobs: a thumbnail job cancelled mid-query at close leaves an aiosqlite task
    # behind (reported to chitram_core); thumbnails are made on demand here instead.
    async with Chitram(make_settings(data_dir, **overrides), background=False) as chitram:
        app = create_app(chitram)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Env(chitram=chitram, app=app, client=client)


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the API's one error envelope with this status and code."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"detail"}
    detail: dict[str, Any] = body["detail"]
    assert set(detail) == {"code", "message", "details"}
    assert detail["code"] == code, detail
    assert isinstance(detail["message"], str) and detail["message"]
    assert isinstance(detail["details"], dict)
    return detail
