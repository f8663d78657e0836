"""A serving process killed after uploads and before their thumbnails exist loses nothing.

The pending state lives in the ``thumbnails`` table, so a restarted process (its start-up pass
over pending jobs) makes every thumbnail the killed one never got to.
"""

from __future__ import annotations

import io
import time

import anyio
import httpx
import pytest
from PIL import Image as PILImage
from serverkit import Cluster, bearer, register

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3, pytest.mark.slow]

UPLOADS = 8
SIDE = 6000
"""A flat 36-megapixel PNG is ~120 KB to upload and ~0.35 s of decoding to thumbnail (PNG has no
draft mode), so with one thumbnail worker most renders are still queued when the uploads end."""


def slow_png(index: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (SIDE, SIDE), (index * 30 % 256, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()


async def upload_all(url: str, token: str, files: list[bytes]) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []

    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:

        async def one(data: bytes) -> None:
            resp = await client.post(
                "/api/v1/images/upload",
                files={"file": ("big.png", data, "image/png")},
                headers=bearer(token),
            )
            assert resp.status_code == 201, resp.text
            results.append(resp.json())

        async with anyio.create_task_group() as tg:
            for data in files:
                tg.start_soon(one, data)
    return results


async def thumbnail_states(cluster: Cluster) -> dict[str, int]:
    rows = await cluster.sql("SELECT status, count(*) AS n FROM thumbnails GROUP BY status")
    return {row["status"]: row["n"] for row in rows}


@pytest.mark.anyio
async def test_thumbnails_pending_when_the_process_is_killed_are_made_after_a_restart(
    cluster: Cluster,
) -> None:
    files = [slow_png(i) for i in range(UPLOADS)]
    (first,) = cluster.ready(
        "first",
        CHITRAM_THUMBNAIL_WORKERS="1",
        CHITRAM_UPLOADS_PER_USER=str(UPLOADS),
        CHITRAM_THUMBNAIL_AT_UPLOAD="false",  # thumbnails as jobs: what this test is about
    )
    token = register(first.url, "kim@example.com")

    images = await upload_all(first.url, token, files)
    first.kill()  # SIGKILL as soon as the last response is in: no shutdown, no draining

    before = await thumbnail_states(cluster)
    assert sum(before.values()) == UPLOADS, before
    print(f"thumbnail rows when the process died: {before}")
    if before.get("pending", 0) == 0:
        pytest.skip(f"every thumbnail was made before the kill ({before}); nothing to recover")

    (second,) = cluster.ready("second", CHITRAM_THUMBNAIL_WORKERS="1")
    deadline = time.monotonic() + 60
    states = before
    while time.monotonic() < deadline:
        states = await thumbnail_states(cluster)
        if states.get("ready", 0) == UPLOADS:
            break
        await anyio.sleep(0.25)
    # Polled through the database, not GET /thumbnail, which would make them on demand.
    assert states == {"ready": UPLOADS}, f"before the restart {before}, now {states}"

    async with httpx.AsyncClient(base_url=second.url, timeout=30.0) as client:
        for image in images:
            meta = await client.get(f"/api/v1/images/{image['id']}")
            assert meta.status_code == 200
            assert meta.json()["thumbnail_ready"] is True, meta.json()
            thumb = await client.get(f"/api/v1/images/{image['id']}/thumbnail")
            assert thumb.status_code == 200
            assert thumb.headers["content-type"] == "image/jpeg"
    keys = cluster.s3_keys("thumbnails/")
    assert len(keys) == UPLOADS
