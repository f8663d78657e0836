"""Hostile uploads get a 4xx, never a 5xx, and the server keeps working afterwards."""

from __future__ import annotations

import io
import time
from pathlib import Path

import anyio
import pytest
from httpkit import assert_error, jpeg_bytes, open_env
from PIL import Image

from chitram_core.testing.bombs import jpeg_scan_bomb, webp_canvas_bomb

pytestmark = pytest.mark.anyio


def big_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (7, 8, 9)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_bombs_are_refused_with_4xx_and_a_normal_upload_works_after(
    tmp_path: Path,
) -> None:
    # A small worker cap: the 4000x4000 PNG thumbnail (64 MB of pixels) cannot be decoded inside it.
    async with open_env(tmp_path, image_workers=1) as env:
        env.chitram.engine.worker_memory = 40 * 1024 * 1024
        token = await env.register()
        scan_bomb = await env.upload(token, jpeg_scan_bomb(500), "scans.jpg", "image/jpeg")
        assert_error(scan_bomb, 400, "INVALID_IMAGE")
        webp_bomb = await env.upload(token, webp_canvas_bomb(), "canvas.webp", "image/webp")
        assert_error(webp_bomb, 400, "IMAGE_TOO_LARGE")
        wide = await env.uploaded(token, big_png(4000, 4000), filename="wide.png")
        thumb = await env.client.get(f"/api/v1/images/{wide['id']}/thumbnail")
        assert 400 <= thumb.status_code < 500, thumb.text
        normal = await env.uploaded(
            token, jpeg_bytes(), filename="fine.jpg", content_type="image/jpeg"
        )
        assert normal["width"] == 64
        ok = await env.client.get(f"/api/v1/images/{normal['id']}/thumbnail")
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"


async def test_an_upload_waiting_too_long_for_image_work_is_503_with_retry_after(
    tmp_path: Path,
) -> None:
    async with open_env(
        tmp_path, image_workers=1, image_wait_timeout=0.2, decode_timeout=30
    ) as env:
        token = await env.register()
        engine = env.chitram.engine
        async with anyio.create_task_group() as tg:

            async def occupy() -> None:
                await engine.run(time.sleep, 30, memory=1)

            tg.start_soon(occupy)
            while engine.running == 0:  # noqa: ASYNC110
                await anyio.sleep(0.005)
            resp = await env.upload(token, jpeg_bytes(), "a.jpg", "image/jpeg")
            assert_error(resp, 503, "SERVICE_UNAVAILABLE")
            assert int(resp.headers["Retry-After"]) >= 1
            tg.cancel_scope.cancel()
        again = await env.uploaded(token, jpeg_bytes(), filename="b.jpg", content_type="image/jpeg")
        assert again["content_type"] == "image/jpeg"
