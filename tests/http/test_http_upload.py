"""POST /api/v1/images/upload: streaming, validation, auth and limits before the body."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import anyio
import pytest
from httpkit import Env, assert_error, bearer, jpeg_bytes, open_env, png_bytes
from PIL import Image as PILImage

pytestmark = pytest.mark.anyio

UPLOAD = "/api/v1/images/upload"


async def test_upload_returns_201_and_the_image(env: Env) -> None:
    token = await env.register()
    data = png_bytes(40, 30)
    resp = await env.upload(token, data, filename="cat.png")
    assert resp.status_code == 201
    image = resp.json()
    assert set(image) == {
        "id",
        "filename",
        "content_type",
        "file_size",
        "width",
        "height",
        "sha256",
        "created_at",
        "url",
        "thumbnail_ready",
        "thumbnail_url",
        "delete_token",
        "blurhash",
        "dominant_color",
    }
    assert image["filename"] == "cat.png"
    assert image["content_type"] == "image/png"
    assert (image["width"], image["height"]) == (40, 30)
    assert image["file_size"] == len(data)
    assert image["delete_token"] is None
    assert image["url"] == f"/api/v1/images/{image['id']}/file"
    assert image["thumbnail_url"] == f"/api/v1/images/{image['id']}/thumbnail"
    assert image["thumbnail_ready"] is True  # rendered in the upload's own image job
    assert resp.headers["location"] == f"/api/v1/images/{image['id']}"
    assert "+00:00" in image["created_at"] or image["created_at"].endswith("Z")


async def test_png_declared_as_html_is_stored_and_served_as_png(env: Env) -> None:
    token = await env.register()
    data = png_bytes()
    image = await env.uploaded(token, data, filename="evil.html", content_type="text/html")
    assert image["content_type"] == "image/png"
    resp = await env.client.get(image["url"])
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert (
        resp.headers["content-security-policy"]
        == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    )
    assert resp.content == data


async def test_non_latin1_filename_uploads_and_downloads(env: Env) -> None:
    token = await env.register()
    name = "猫の写真 — ünïcödé 🐈.png"
    image = await env.uploaded(token, filename=name)
    assert image["filename"] == name
    meta = await env.client.get(f"/api/v1/images/{image['id']}")
    assert meta.json()["filename"] == name
    resp = await env.client.get(image["url"])
    assert resp.status_code == 200
    disposition = resp.headers["content-disposition"]
    assert disposition.isascii()
    assert disposition.startswith('inline; filename="')
    from urllib.parse import quote, unquote

    star = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(star) == name
    assert star == quote(name, safe="!#$&+-.^_`|~")


async def test_filename_with_quotes_and_path_is_made_safe(env: Env) -> None:
    token = await env.register()
    image = await env.uploaded(token, filename='..\\dir/a"b;c.png')
    resp = await env.client.get(image["url"])
    disposition = resp.headers["content-disposition"]
    simple = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert '"' not in simple and "\\" not in simple and "/" not in simple


async def test_jpeg_with_a_png_name_is_a_jpeg(env: Env) -> None:
    token = await env.register()
    image = await env.uploaded(token, jpeg_bytes(), filename="photo.png", content_type="image/png")
    assert image["content_type"] == "image/jpeg"


async def test_missing_file_field_is_422(env: Env) -> None:
    token = await env.register()
    resp = await env.client.post(
        UPLOAD, files={"other": ("a.png", png_bytes(), "image/png")}, headers=bearer(token)
    )
    detail = assert_error(resp, 422, "VALIDATION_ERROR")
    assert detail["details"].get("field") == "file"


async def test_a_body_that_is_not_multipart_is_422(env: Env) -> None:
    token = await env.register()
    resp = await env.client.post(UPLOAD, json={"file": "x"}, headers=bearer(token))
    assert_error(resp, 422, "VALIDATION_ERROR")
    resp = await env.client.post(UPLOAD, headers=bearer(token))
    assert_error(resp, 422, "VALIDATION_ERROR")


async def test_empty_file_is_400(env: Env) -> None:
    token = await env.register()
    resp = await env.upload(token, b"")
    assert_error(resp, 400, "INVALID_REQUEST")


async def test_bytes_that_are_not_an_image_are_400(env: Env) -> None:
    token = await env.register()
    resp = await env.upload(token, b"<html><script>alert(1)</script></html>", "x.png")
    assert_error(resp, 400, "INVALID_FILE_FORMAT")


async def test_truncated_png_is_400_invalid_image(env: Env) -> None:
    token = await env.register()
    data = png_bytes(200, 200, "green")
    resp = await env.upload(token, data[: len(data) // 2])
    assert resp.status_code == 400
    assert resp.json()["detail"]["code"] in {"INVALID_IMAGE", "INVALID_REQUEST"}


async def test_too_many_pixels_is_400_image_too_large(tmp_path: Path) -> None:
    async with open_env(tmp_path, max_pixels=100) as env:
        token = await env.register()
        resp = await env.upload(token, png_bytes(20, 20))
        assert_error(resp, 400, "IMAGE_TOO_LARGE")


def _multipart(boundary: str, data: bytes, filename: str = "a.png") -> bytes:
    return (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


@pytest.mark.parametrize(
    "body",
    [
        b"garbage without any boundary",
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"\r\n',  # headers never end
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        + b"\x89PNG\r\n\x1a\n",  # file part never closed
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="\xff\xfe.png"\r\n'
        b"\r\nabc\r\n--BOUNDARY--\r\n",  # filename not UTF-8
        b"--BOUNDARY\r\nContent-Transfer-Encoding: base64\r\n\r\nabc\r\n--BOUNDARY--\r\n",
    ],
)
async def test_malformed_multipart_is_4xx_with_the_envelope(env: Env, body: bytes) -> None:
    token = await env.register()
    resp = await env.client.post(
        UPLOAD,
        content=body,
        headers={**bearer(token), "Content-Type": "multipart/form-data; boundary=BOUNDARY"},
    )
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["detail"]["code"] in {"INVALID_REQUEST", "VALIDATION_ERROR"}


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=" + "x" * 80,
    ],
)
async def test_bad_multipart_boundary_is_400(env: Env, content_type: str) -> None:
    token = await env.register()
    resp = await env.client.post(
        UPLOAD,
        content=_multipart("B", png_bytes()),
        headers={**bearer(token), "Content-Type": content_type},
    )
    assert_error(resp, 400, "INVALID_REQUEST")


async def test_raw_multipart_with_rfc5987_filename(env: Env) -> None:
    token = await env.register()
    body = (
        b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''%E7%8C%AB.png\r\n"
        b"Content-Type: image/png\r\n\r\n" + png_bytes() + b"\r\n--B--\r\n"
    )
    resp = await env.client.post(
        UPLOAD,
        content=body,
        headers={**bearer(token), "Content-Type": "multipart/form-data; boundary=B"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["filename"] == "猫.png"


# size limits ---------------------------------------------------------------------------------


async def test_content_length_over_the_limit_is_413_before_the_body(tmp_path: Path) -> None:
    async with open_env(tmp_path, max_upload_bytes=100_000) as env:
        token = await env.register()
        counter = BodyCounter(total=50 * 1024 * 1024, content_length=True)
        status, body = await raw_request(env, counter, headers=bearer(token))
        assert status == 413
        assert body["detail"]["code"] == "FILE_TOO_LARGE"
        assert counter.pulled == 0


async def test_a_streamed_body_over_the_limit_is_cut_off_with_413(tmp_path: Path) -> None:
    async with open_env(tmp_path, max_upload_bytes=100_000) as env:
        token = await env.register()
        counter = BodyCounter(total=50 * 1024 * 1024, content_length=False)
        status, body = await raw_request(env, counter, headers=bearer(token))
        assert status == 413
        assert body["detail"]["code"] == "FILE_TOO_LARGE"
        # The limit plus the multipart allowance and one read-ahead buffer, not 50 MB.
        assert counter.pulled < 100_000 + 64 * 1024 + 256 * 1024
        assert list((tmp_path / "images").rglob("*.tmp*")) == []


async def test_file_just_over_the_limit_is_413_even_within_the_allowance(tmp_path: Path) -> None:
    async with open_env(tmp_path, max_upload_bytes=10_000) as env:
        token = await env.register()
        data = png_bytes(200, 200, "white") + b"\0" * 10_000
        resp = await env.upload(token, data)
        detail = assert_error(resp, 413, "FILE_TOO_LARGE")
        assert detail["details"]["max_bytes"] == 10_000


class BodyCounter:
    """A client body of ``total`` bytes, sent in 4 KiB events; counts what the app pulled."""

    def __init__(self, total: int, *, content_length: bool, chunk: int = 4096) -> None:
        self.total = total
        self.content_length = content_length
        self.chunk = chunk
        self.pulled = 0
        self.head = (
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + png_bytes()
        )

    async def receive(self) -> dict[str, Any]:
        if self.pulled >= self.total:
            await anyio.sleep_forever()
        if self.pulled == 0:
            piece = self.head + b"\0" * (self.chunk - len(self.head))
        else:
            piece = b"\0" * min(self.chunk, self.total - self.pulled)
        self.pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": self.pulled < self.total}


async def raw_request(
    env: Env, counter: BodyCounter, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """One upload straight through the ASGI interface, so every body byte pulled is counted."""
    import json

    raw_headers = [(b"content-type", b"multipart/form-data; boundary=B"), (b"host", b"t")]
    if counter.content_length:
        raw_headers.append((b"content-length", str(counter.total).encode()))
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": UPLOAD,
        "raw_path": UPLOAD.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 5000),
        "server": ("t", 80),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(30):
        await env.app(scope, counter.receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


async def test_unauthenticated_50mb_upload_is_refused_before_reading_its_body(env: Env) -> None:
    for content_length in (True, False):
        counter = BodyCounter(total=50 * 1024 * 1024, content_length=content_length)
        status, body = await raw_request(env, counter, headers={})
        assert status == 401
        assert body["detail"]["code"] == "UNAUTHORIZED"
        assert counter.pulled <= 4096  # nothing at all, in fact
        assert counter.pulled == 0


async def test_bad_token_on_a_50mb_upload_is_refused_before_its_body(env: Env) -> None:
    counter = BodyCounter(total=50 * 1024 * 1024, content_length=True)
    status, body = await raw_request(env, counter, headers=bearer("not-a-token"))
    assert status == 401
    assert body["detail"]["code"] == "INVALID_TOKEN"
    assert counter.pulled == 0


# auth --------------------------------------------------------------------------------------


async def test_anonymous_upload_is_401_unless_allowed(env: Env) -> None:
    resp = await env.upload(None)
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_anonymous_upload_gets_a_one_time_delete_token(tmp_path: Path) -> None:
    async with open_env(tmp_path, allow_anonymous_uploads=True) as env:
        image = await env.uploaded(None)
        token = image["delete_token"]
        assert isinstance(token, str) and len(token) >= 32
        meta = await env.client.get(f"/api/v1/images/{image['id']}")
        assert meta.json()["delete_token"] is None
        wrong = await env.client.delete(
            f"/api/v1/images/{image['id']}", params={"delete_token": token + "x"}
        )
        assert_error(wrong, 403, "INVALID_DELETE_TOKEN")
        done = await env.client.delete(
            f"/api/v1/images/{image['id']}", params={"delete_token": token}
        )
        assert done.status_code == 204
        gone = await env.client.get(image["url"])
        assert_error(gone, 404, "IMAGE_NOT_FOUND")


async def test_bad_token_is_401_even_when_anonymous_uploads_are_allowed(tmp_path: Path) -> None:
    async with open_env(tmp_path, allow_anonymous_uploads=True) as env:
        resp = await env.upload("garbage")
        assert_error(resp, 401, "INVALID_TOKEN")
        assert 'error="invalid_token"' in resp.headers["www-authenticate"]
        resp = await env.client.post(
            UPLOAD,
            files={"file": ("a.png", png_bytes(), "image/png")},
            headers={"Authorization": "Basic dXNlcjpwYXNz"},
        )
        assert_error(resp, 401, "INVALID_TOKEN")


# rate limits and back-pressure --------------------------------------------------------------


async def test_upload_rate_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    from chitram_core import RateLimit

    async with open_env(tmp_path, upload_rate_limit=RateLimit(2, 60)) as env:
        token = await env.register()
        first = await env.upload(token)
        assert first.headers["x-ratelimit-limit"] == "2"
        assert first.headers["x-ratelimit-remaining"] == "1"
        second = await env.upload(token, png_bytes(color="blue"))
        assert second.headers["x-ratelimit-remaining"] == "0"
        third = await env.upload(token, png_bytes(color="green"))
        detail = assert_error(third, 429, "RATE_LIMIT_EXCEEDED")
        assert detail["details"]["limit"] == 2
        assert 1 <= int(third.headers["retry-after"]) <= 60
        assert detail["details"]["retry_after"] == int(third.headers["retry-after"])
        assert third.headers["x-ratelimit-remaining"] == "0"
        # Another user has their own bucket.
        other = await env.upload(await env.register())
        assert other.status_code == 201


async def test_anonymous_rate_limit_is_per_client_address(tmp_path: Path) -> None:
    from chitram_core import RateLimit

    async with open_env(
        tmp_path, upload_rate_limit=RateLimit(1, 60), allow_anonymous_uploads=True
    ) as env:
        assert (await env.upload(None)).status_code == 201
        # X-Forwarded-For from an untrusted peer does not buy a new bucket.
        spoofed = await env.client.post(
            UPLOAD,
            files={"file": ("a.png", png_bytes(color="blue"), "image/png")},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert_error(spoofed, 429, "RATE_LIMIT_EXCEEDED")


async def test_rate_limited_upload_is_refused_before_its_body(tmp_path: Path) -> None:
    from chitram_core import RateLimit

    async with open_env(tmp_path, upload_rate_limit=RateLimit(1, 60)) as env:
        token = await env.register()
        assert (await env.upload(token)).status_code == 201
        counter = BodyCounter(total=10 * 1024 * 1024, content_length=False)
        status, _ = await raw_request(env, counter, headers=bearer(token))
        assert status == 429
        assert counter.pulled == 0


async def test_no_free_upload_slot_is_503_with_retry_after(tmp_path: Path) -> None:
    async with open_env(tmp_path, upload_concurrency=1, upload_wait_timeout=0.2) as env:
        token = await env.register()
        async with env.chitram.upload_slots.acquire():
            resp = await env.upload(token)
        assert_error(resp, 503, "SERVICE_UNAVAILABLE")
        assert int(resp.headers["retry-after"]) >= 1
        assert (await env.upload(token)).status_code == 201


async def test_a_full_upload_queue_refuses_from_the_headers_after_a_short_wait(
    tmp_path: Path,
) -> None:
    # One slot, no queue: while the slot is held there is no room. The upload waits for room
    # (room_wait, 0.5 s) without pulling a byte of its body, then is 503 with Retry-After.
    async with open_env(tmp_path, upload_concurrency=1, upload_queue=0) as env:
        token = await env.register()
        counter = BodyCounter(total=4 * 1024 * 1024, content_length=True)  # within the limit
        async with env.chitram.upload_slots.acquire():
            started = anyio.current_time()
            status, body = await raw_request(env, counter, headers=bearer(token))
            waited = anyio.current_time() - started
        assert status == 503 and body["detail"]["code"] == "SERVICE_UNAVAILABLE"
        assert counter.pulled == 0
        assert 0.4 <= waited < 5
        assert (await env.upload(token)).status_code == 201


async def test_the_wait_for_room_is_a_setting(tmp_path: Path) -> None:
    async with open_env(
        tmp_path, upload_concurrency=1, upload_queue=0, upload_room_wait=1.5
    ) as env:
        token = await env.register()
        async with env.chitram.upload_slots.acquire():
            started = anyio.current_time()
            resp = await env.upload(token)
            waited = anyio.current_time() - started
        assert_error(resp, 503, "SERVICE_UNAVAILABLE")
        assert waited >= 1.4


async def test_an_upload_waiting_for_room_is_let_in_when_a_slot_frees_up(
    tmp_path: Path,
) -> None:
    async with open_env(tmp_path, upload_concurrency=1, upload_queue=0) as env:
        token = await env.register()
        slots = env.chitram.upload_slots
        await slots.take()
        results: list[int] = []

        async def upload() -> None:
            results.append((await env.upload(token)).status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(upload)
            await anyio.sleep(0.1)
            assert not results  # waiting for room, neither refused nor through
            health = (await env.client.get("/health")).json()["upload_concurrency"]
            assert health == {"limit": 1, "in_use": 1, "waiting": 0, "waiting_for_room": 1}
            slots.release()
        assert results == [201]
        health = (await env.client.get("/health")).json()["upload_concurrency"]
        assert health["waiting_for_room"] == 0


async def test_identical_bytes_are_two_images(env: Env) -> None:
    token = await env.register()
    data = png_bytes(color="purple")
    a = await env.uploaded(token, data)
    b = await env.uploaded(token, data)
    assert a["id"] != b["id"] and a["sha256"] == b["sha256"]
    assert (
        await env.client.delete(f"/api/v1/images/{a['id']}", headers=bearer(token))
    ).status_code == 204
    assert (await env.client.get(b["url"])).content == data


async def test_exif_gps_is_stripped_from_what_is_served(env: Env) -> None:
    token = await env.register()
    img = PILImage.new("RGB", (32, 32), "orange")
    exif = PILImage.Exif()
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPSInfo
    exif[0x0112] = 1
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", exif=exif)
    image = await env.uploaded(token, buffer.getvalue(), filename="gps.jpg")
    served = (await env.client.get(image["url"])).content
    assert PILImage.open(io.BytesIO(served)).getexif().get(0x8825) is None
