"""The web UI's tus routes over HTTP (no browser): the session's user, CSRF-checked, and the
tus-js-client bundle served from the app with its licence beside it in the package."""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import pytest
from PIL import Image as PILImage
from webkit import WebEnv, open_web

pytestmark = pytest.mark.anyio

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebEnv]:
    async with open_web(tmp_path) as env:
        yield env


def noisy_png() -> bytes:
    out = io.BytesIO()
    PILImage.frombytes("RGB", (60, 40), random.Random(3).randbytes(60 * 40 * 3)).save(out, "PNG")
    return out.getvalue()


async def test_the_ui_tus_routes_need_the_session_and_the_csrf_header(web: WebEnv) -> None:
    anonymous = await web.client.post("/ui/api/uploads", headers={**TUS, "Upload-Length": "10"})
    assert anonymous.status_code in (401, 403)
    await web.register()
    refused = await web.client.post("/ui/api/uploads", headers={**TUS, "Upload-Length": "10"})
    assert refused.status_code == 403
    assert refused.json()["detail"]["code"] == "FORBIDDEN"
    token = await web.form("/upload")
    data = noisy_png()
    headers = {**TUS, "X-CSRF-Token": token}
    created = await web.client.post(
        "/ui/api/uploads", headers={**headers, "Upload-Length": str(len(data))}
    )
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    assert location.startswith("/ui/api/uploads/")
    done = await web.client.patch(
        location, content=data, headers={**headers, **CHUNK, "Upload-Offset": "0"}
    )
    assert done.status_code == 204, done.text
    image_id = done.headers["Chitram-Image-Id"]
    image = web.client.get(f"/api/v1/images/{image_id}")
    assert (await image).json()["width"] == 60
    no_token = await web.client.head(location, headers=TUS)
    assert no_token.status_code == 403


async def test_the_upload_page_loads_the_bundled_tus_client(web: WebEnv) -> None:
    await web.register()
    page = (await web.client.get("/upload")).text
    assert 'src="/ui/static/tus.min.js?v=' in page
    assert 'data-resumable-endpoint="/ui/api/uploads"' in page
    script = await web.client.get("/ui/static/tus.min.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    static = resources.files("chitram_falcon.web").joinpath("static")
    assert "MIT License" in static.joinpath("tus-js-client.LICENSE").read_text()
