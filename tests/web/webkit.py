"""Helpers for the web UI tests: images to upload, form scraping, an app over a real Chitram."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import httpx
from PIL import Image as PILImage
from PIL import ImageDraw

from chitram_core import Chitram, Settings
from chitram_falcon import ChitramApp, create_app

PASSWORD = "correct horse battery"
PAGE_SIZE = 3
"""The gallery page size of the browser tests' server: a few images make several pages."""
ATTACKER_HOST = "evil.test"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def picture(width: int = 640, height: int = 480, hue: int = 0, fmt: str = "PNG") -> bytes:
    """A small image that looks like something in a screenshot: a gradient sky and hills."""
    image = PILImage.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line(
            [(0, y), (width, y)],
            fill=(int(40 + 120 * t + hue) % 256, int(90 + 80 * t), int(200 - 60 * t + hue) % 256),
        )
    draw.ellipse([width * 0.65, height * 0.12, width * 0.8, height * 0.32], fill=(255, 212, 59))
    draw.polygon(
        [(0, height), (width * 0.3, height * 0.55), (width * 0.6, height), (0, height)],
        fill=(46 + hue % 60, 125, 50),
    )
    draw.polygon(
        [
            (width * 0.35, height),
            (width * 0.7, height * 0.45),
            (width, height * 0.8),
            (width, height),
        ],
        fill=(30, 90 + hue % 80, 40),
    )
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no csrf_token field on the page"
    return match.group(1)


def session_payload(cookie_value: str) -> dict[str, Any]:
    """What the (signed, not encrypted) session cookie carries."""
    body = cookie_value.split(".")[0]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "upload_rate_limit": None,
        "auth_rate_limit": None,
    }
    values.update(overrides)
    return Settings(**values)


@attrs.define
class WebEnv:
    chitram: Chitram
    app: ChitramApp
    client: httpx.AsyncClient
    counter: int = 0

    async def form(self, path: str) -> str:
        """GET a page and return its CSRF token (the visit also sets the session cookie)."""
        resp = await self.client.get(path)
        assert resp.status_code == 200, resp.text
        return csrf_of(resp.text)

    async def register(self, email: str | None = None) -> str:
        if email is None:
            self.counter += 1
            email = f"web{self.counter}@example.com"
        token = await self.form("/register")
        resp = await self.client.post(
            "/register", data={"email": email, "password": PASSWORD, "csrf_token": token}
        )
        assert resp.status_code == 303, resp.text
        return email


@asynccontextmanager
async def open_web(
    data_dir: Path, base_url: str = "http://testserver", **overrides: Any
) -> AsyncIterator[WebEnv]:
    async with Chitram(make_settings(data_dir, **overrides), background=False) as chitram:
        app = create_app(chitram)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield WebEnv(chitram=chitram, app=app, client=client)


class Server:
    def __init__(self, base_url: str, data_dir: Path, *, link_port: int = 0) -> None:
        self.base_url = base_url
        self.data_dir = data_dir
        self.link_port = link_port
        """The port a URL upload may fetch from on 127.0.0.1."""
        self.api = httpx.Client(base_url=base_url, timeout=10)


class Attacker:
    """A site on another host name whose page posts a form to the app (the user clicks it)."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not found").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{ATTACKER_HOST}:{self.port}{path}"
