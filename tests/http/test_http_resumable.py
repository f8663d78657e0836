"""The tus 1.0.0 routes at /api/v1/uploads: every header and every error code they answer."""

from __future__ import annotations

import base64
import hashlib
import io
import random
from typing import Any

import httpx
import pytest
from httpkit import Env, assert_error, bearer, open_env
from PIL import Image as PILImage

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {"Content-Type": "application/offset+octet-stream"}
UPLOADS = "/api/v1/uploads"

pytestmark = pytest.mark.anyio


def noisy_png(seed: int = 1, size: tuple[int, int] = (80, 60)) -> bytes:
    pixels = random.Random(seed).randbytes(size[0] * size[1] * 3)
    out = io.BytesIO()
    PILImage.frombytes("RGB", size, pixels).save(out, "PNG")
    return out.getvalue()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def create(
    env: Env, token: str, length: int, headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    return await env.client.post(
        UPLOADS,
        headers={**TUS, **bearer(token), "Upload-Length": str(length), **(headers or {})},
        **kw,
    )


async def patch(
    env: Env, token: str, location: str, offset: int, data: bytes, **headers: str
) -> httpx.Response:
    return await env.client.patch(
        location,
        content=data,
        headers={**TUS, **CHUNK, **bearer(token), "Upload-Offset": str(offset), **headers},
    )


async def test_options_tells_what_the_server_supports(env: Env) -> None:
    resp = await env.client.options(UPLOADS)
    assert resp.status_code == 204
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert resp.headers["Tus-Extension"] == (
        "creation,creation-with-upload,termination,expiration,checksum"
    )
    assert resp.headers["Tus-Max-Size"] == str(200 * 1024 * 1024)
    assert resp.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"


async def test_a_whole_upload_head_patch_and_the_image(env: Env) -> None:
    token = await env.register()
    data = noisy_png()
    created = await create(env, token, len(data), {"Upload-Metadata": f"filename {b64('a.png')}"})
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    assert location.startswith(f"{UPLOADS}/")
    assert created.headers["Tus-Resumable"] == "1.0.0"
    assert created.headers["Upload-Expires"].endswith("GMT")

    head = await env.client.head(location, headers={**TUS, **bearer(token)})
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Cache-Control"] == "no-store"
    assert "Chitram-Image-Id" not in head.headers

    half = len(data) // 2
    first = await patch(env, token, location, 0, data[:half])
    assert first.status_code == 204, first.text
    assert first.headers["Upload-Offset"] == str(half)
    assert "Chitram-Image-Id" not in first.headers
    last = await patch(env, token, location, half, data[half:])
    assert last.status_code == 204, last.text
    assert last.headers["Upload-Offset"] == str(len(data))
    image_id = last.headers["Chitram-Image-Id"]

    got = await env.client.get(f"/api/v1/images/{image_id}/file")
    assert got.content == data
    meta = (await env.client.get(f"/api/v1/images/{image_id}")).json()
    assert meta["filename"] == "a.png"
    again = await env.client.head(location, headers={**TUS, **bearer(token)})
    assert again.headers["Chitram-Image-Id"] == image_id
    assert again.headers["Upload-Offset"] == str(len(data))


async def test_creation_with_upload_takes_the_first_chunk(env: Env) -> None:
    token = await env.register()
    data = noisy_png(2)
    resp = await create(env, token, len(data), CHUNK, content=data[:1000])
    assert resp.status_code == 201, resp.text
    assert resp.headers["Upload-Offset"] == "1000"
    whole = await create(env, token, len(data), CHUNK, content=data)
    assert whole.status_code == 201
    assert "Chitram-Image-Id" in whole.headers


async def test_without_tus_resumable_every_request_but_options_is_412(env: Env) -> None:
    token = await env.register()
    created = await create(env, token, 100)
    location = created.headers["Location"]
    for method, url in (("POST", UPLOADS), ("PATCH", location), ("DELETE", location)):
        resp = await env.client.request(
            method, url, headers={**bearer(token), "Upload-Length": "10", **CHUNK}
        )
        assert_error(resp, 412, "INVALID_REQUEST")
        assert resp.headers["Tus-Version"] == "1.0.0"
        assert resp.headers["Tus-Resumable"] == "1.0.0"
    head = await env.client.head(location, headers=bearer(token))
    assert head.status_code == 412


async def test_a_wrong_offset_is_409_offset_mismatch(env: Env) -> None:
    token = await env.register()
    data = noisy_png(3)
    location = (await create(env, token, len(data))).headers["Location"]
    resp = await patch(env, token, location, 5, data[5:50])
    detail = assert_error(resp, 409, "OFFSET_MISMATCH")
    assert detail["details"]["offset"] == 0
    assert resp.headers["Tus-Resumable"] == "1.0.0"


async def test_a_checksum_mismatch_is_460_and_the_chunk_is_discarded(env: Env) -> None:
    token = await env.register()
    data = noisy_png(4)
    location = (await create(env, token, len(data))).headers["Location"]
    bad = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    resp = await patch(env, token, location, 0, data[:500], **{"Upload-Checksum": f"sha1 {bad}"})
    assert_error(resp, 460, "CHECKSUM_MISMATCH")
    head = await env.client.head(location, headers={**TUS, **bearer(token)})
    assert head.headers["Upload-Offset"] == "0"
    good = base64.b64encode(hashlib.sha256(data[:500]).digest()).decode()
    ok = await patch(env, token, location, 0, data[:500], **{"Upload-Checksum": f"sha256 {good}"})
    assert ok.status_code == 204 and ok.headers["Upload-Offset"] == "500"
    unknown = await patch(env, token, location, 500, b"x", **{"Upload-Checksum": "md5 AAAA"})
    assert_error(unknown, 400, "INVALID_REQUEST")


async def test_someone_elses_upload_is_404_upload_not_found(env: Env) -> None:
    owner, other = await env.register(), await env.register()
    location = (await create(env, owner, 100)).headers["Location"]
    for method in ("PATCH", "DELETE"):
        resp = await env.client.request(
            method, location, headers={**TUS, **CHUNK, **bearer(other), "Upload-Offset": "0"}
        )
        assert_error(resp, 404, "UPLOAD_NOT_FOUND")
    head = await env.client.head(location, headers={**TUS, **bearer(other)})
    assert head.status_code == 404
    missing = await patch(env, owner, f"{UPLOADS}/{'0' * 32}", 0, b"x")
    assert_error(missing, 404, "UPLOAD_NOT_FOUND")


async def test_delete_terminates_the_upload(env: Env) -> None:
    token = await env.register()
    data = noisy_png(5)
    location = (await create(env, token, len(data), CHUNK, content=data[:300])).headers["Location"]
    resp = await env.client.delete(location, headers={**TUS, **bearer(token)})
    assert resp.status_code == 204 and resp.headers["Tus-Resumable"] == "1.0.0"
    assert [k async for k in env.chitram.storage.keys("resumable/")] == []
    head = await env.client.head(location, headers={**TUS, **bearer(token)})
    assert head.status_code == 404


async def test_creation_refusals(env: Env) -> None:
    token = await env.register()
    too_big = await create(env, token, 200 * 1024 * 1024 + 1)
    assert_error(too_big, 413, "FILE_TOO_LARGE")
    assert too_big.headers["Tus-Resumable"] == "1.0.0"
    for bad in ("", "-1", "ten"):
        assert_error(await create(env, token, 0, {"Upload-Length": bad}), 400, "INVALID_REQUEST")
    deferred = await env.client.post(
        UPLOADS, headers={**TUS, **bearer(token), "Upload-Defer-Length": "1"}
    )
    assert_error(deferred, 400, "INVALID_REQUEST")
    anonymous = await env.client.post(UPLOADS, headers={**TUS, "Upload-Length": "10"})
    assert_error(anonymous, 401, "UNAUTHORIZED")
    wrong_type = await create(env, token, 10, {"Content-Type": "image/png"}, content=b"x")
    assert wrong_type.status_code == 415
    bad_meta = await create(env, token, 10, {"Upload-Metadata": "filename ###"})
    assert_error(bad_meta, 400, "INVALID_REQUEST")


async def test_a_patch_that_is_not_a_chunk_is_415(env: Env) -> None:
    token = await env.register()
    location = (await create(env, token, 100)).headers["Location"]
    resp = await env.client.patch(
        location,
        content=b"x",
        headers={**TUS, **bearer(token), "Upload-Offset": "0", "Content-Type": "text/plain"},
    )
    assert resp.status_code == 415
    no_offset = await env.client.patch(
        location, content=b"x", headers={**TUS, **CHUNK, **bearer(token)}
    )
    assert_error(no_offset, 400, "INVALID_REQUEST")


async def test_bytes_that_are_no_image_are_refused_at_the_first_chunk(env: Env) -> None:
    token = await env.register()
    location = (await create(env, token, 5000)).headers["Location"]
    resp = await patch(env, token, location, 0, b"<html><body>not an image</body></html>")
    assert_error(resp, 400, "INVALID_FILE_FORMAT")
    head = await env.client.head(location, headers={**TUS, **bearer(token)})
    assert head.status_code == 404


async def test_a_chunk_past_the_declared_length_is_413(env: Env) -> None:
    token = await env.register()
    data = noisy_png(6)
    location = (await create(env, token, 100)).headers["Location"]
    assert_error(await patch(env, token, location, 0, data[:101]), 413, "FILE_TOO_LARGE")


async def test_creation_counts_against_the_upload_rate_limit(tmp_path: Any) -> None:
    from chitram_core.settings import RateLimit

    async with open_env(tmp_path, upload_rate_limit=RateLimit(2, 60)) as env:
        token = await env.register()
        assert (await create(env, token, 10)).status_code == 201
        assert (await create(env, token, 10)).status_code == 201
        limited = await create(env, token, 10)
        assert_error(limited, 429, "RATE_LIMIT_EXCEEDED")
        assert "Retry-After" in limited.headers


async def test_a_smaller_limit_is_told_and_enforced(tmp_path: Any) -> None:
    async with open_env(tmp_path, max_resumable_bytes=1000) as env:
        token = await env.register()
        options = await env.client.options(UPLOADS)
        assert options.headers["Tus-Max-Size"] == "1000"
        assert_error(await create(env, token, 1001), 413, "FILE_TOO_LARGE")
        assert (await create(env, token, 1000)).status_code == 201


async def test_an_upload_over_the_remaining_quota_is_refused_at_creation(env: Env) -> None:
    """The declared Upload-Length is held against what is left of the quota (bytes, and one
    more image), before any upload exists or any byte is sent."""
    token = await env.register()
    user_id = (await env.client.get("/api/v1/auth/me", headers=bearer(token))).json()["id"]
    first = await env.uploaded(token, noisy_png(7))
    await env.chitram.users.set_quota(user_id, bytes=first["file_size"] + 1000)

    over = await create(env, token, 1001)
    detail = assert_error(over, 413, "QUOTA_EXCEEDED")
    assert "1001" in detail["message"]
    assert over.headers["Tus-Resumable"] == "1.0.0"
    assert "Location" not in over.headers
    with_body = await create(env, token, 5000, CHUNK, content=noisy_png(8)[:100])
    assert_error(with_body, 413, "QUOTA_EXCEEDED")
    assert [k async for k in env.chitram.storage.keys("resumable/")] == []

    fits = await create(env, token, 1000)
    assert fits.status_code == 201, fits.text
    await env.client.delete(fits.headers["Location"], headers={**TUS, **bearer(token)})

    await env.chitram.users.set_quota(user_id, bytes=None, images=1)
    assert_error(await create(env, token, 10), 413, "QUOTA_EXCEEDED")
    me = (await env.client.get("/api/v1/auth/me", headers=bearer(token))).json()
    assert me["usage"]["images"] == 1 and me["usage"]["quota_images"] == 1
