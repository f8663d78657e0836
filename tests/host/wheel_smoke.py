"""Run by test_wheel.py with the Python of a fresh venv where only the built wheel is installed.

Exits non-zero (with a message) on the first thing that does not work from the installed wheel.
"""

from __future__ import annotations

import io
import json
import sys
import uuid
from importlib import metadata, resources
from pathlib import Path

import anyio

import chitram_core
import chitram_falcon
from chitram_core import Chitram, Settings
from chitram_falcon import create_app

VENV = Path(sys.prefix).resolve()
DATA = Path(sys.argv[1])


def fail(message: str) -> None:
    print(f"SMOKE FAILED: {message}", flush=True)
    sys.exit(1)


def png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (120, 80), "purple").save(buffer, "PNG")
    return buffer.getvalue()


def check_installed_from_the_wheel() -> None:
    for module in (chitram_core, chitram_falcon):
        location = Path(module.__file__ or "").resolve()
        if not location.is_relative_to(VENV):
            fail(f"{module.__name__} was imported from {location}, not from the venv {VENV}")
    for package in ("chitram_core", "chitram_falcon"):
        if not resources.files(package).joinpath("py.typed").is_file():
            fail(f"{package}/py.typed is missing")
    groups = {ep.group for ep in metadata.distribution("chitram").entry_points}
    for group in (
        "console_scripts",
        "pytest11",
        "chitram.storage",
        "chitram.auth",
        "chitram.cache",
    ):
        if group not in groups:
            fail(f"the {group} entry points are missing")
    licenses = [f for f in metadata.distribution("chitram").files or [] if "LICENSE" in f.name]
    if not licenses:
        fail("the LICENSE file is not in the wheel's metadata")


async def asgi_get(app: object, path: str) -> tuple[int, bytes]:
    """One GET through the ASGI interface (no HTTP client is installed here)."""
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "root_path": "",
    }
    await app(scope, receive, send)  # type: ignore[operator]
    status = next(int(m["status"]) for m in sent if m["type"] == "http.response.start")  # type: ignore[call-overload]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")  # type: ignore[misc]
    return status, body


async def sdk_and_app() -> None:
    settings = Settings(
        env="test",
        data_dir=DATA,
        storage_url=f"memory://wheel-smoke-{uuid.uuid4().hex}",
        password_hash_profile="fast",
    )
    async with Chitram(settings) as chitram:  # migrations run from the wheel's files
        session = await chitram.auth.register("wheel@example.com", "correct horse battery")
        owner = await chitram.auth.authenticate(session.access_token)
        data = png()
        image = await chitram.images.upload(data, filename="smoke.png", owner=owner)
        read = b"".join([chunk async for chunk in chitram.images.read(image.id)])
        if read != data or (image.width, image.height) != (120, 80):
            fail("the uploaded image did not read back byte for byte")
        thumbnail = await chitram.images.thumbnail(image.id)
        if thumbnail.width != 120 or thumbnail.content_type != "image/jpeg":
            fail(f"unexpected thumbnail {thumbnail!r}")
        app = create_app(chitram)
        status, body = await asgi_get(app, f"/api/v1/images/{image.id}")
        if status != 200 or json.loads(body)["filename"] != "smoke.png":
            fail(f"GET /api/v1/images/<id> answered {status}: {body[:200]!r}")
        status, body = await asgi_get(app, "/signin")
        if status != 200 or b"<html" not in body.lower():
            fail(f"the web UI page answered {status} (templates missing?): {body[:200]!r}")
        status, body = await asgi_get(app, "/ui/static/app.css")
        if status != 200 or not body:
            fail(f"a web UI static file answered {status}")


check_installed_from_the_wheel()
anyio.run(sdk_and_app)
print("SMOKE OK", flush=True)
