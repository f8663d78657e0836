"""GET/HEAD /file and /thumbnail, GET /images/{id}: validators, ranges, headers."""

from __future__ import annotations

import io
import uuid

import pytest
from httpkit import Env, assert_error, bearer, png_bytes
from PIL import Image as PILImage

pytestmark = pytest.mark.anyio

IMMUTABLE = "public, max-age=31536000, immutable"


async def _image(env: Env, data: bytes | None = None) -> tuple[dict[str, object], bytes]:
    token = await env.register()
    data = data or png_bytes(120, 80, "teal")
    return await env.uploaded(token, data), data


def _assert_binary_headers(headers: object) -> None:
    assert headers["x-content-type-options"] == "nosniff"  # type: ignore[index]
    assert (
        headers["content-security-policy"]
        == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    )  # type: ignore[index]
    assert headers["cache-control"] == IMMUTABLE  # type: ignore[index]
    assert headers["accept-ranges"] == "bytes"  # type: ignore[index]
    assert headers["content-disposition"].startswith("inline; filename=")  # type: ignore[index]


async def test_file_is_served_whole_with_every_header(env: Env) -> None:
    image, data = await _image(env)
    resp = await env.client.get(str(image["url"]))
    assert resp.status_code == 200
    assert resp.content == data
    assert resp.headers["etag"] == f'"{image["sha256"]}"'
    assert resp.headers["content-length"] == str(len(data))
    assert resp.headers["content-type"] == "image/png"
    _assert_binary_headers(resp.headers)


async def test_large_file_streams_in_several_chunks(env: Env) -> None:
    img = PILImage.effect_noise((600, 600), 64).convert("RGB")
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    data = buffer.getvalue()
    assert len(data) > 200_000
    image, _ = await _image(env, data)
    resp = await env.client.get(str(image["url"]))
    assert resp.content == data
    part = await env.client.get(str(image["url"]), headers={"Range": "bytes=100000-200001"})
    assert part.status_code == 206
    assert part.content == data[100000:200002]


async def test_if_none_match_is_304(env: Env) -> None:
    image, _ = await _image(env)
    etag = f'"{image["sha256"]}"'
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        resp = await env.client.get(str(image["url"]), headers={"If-None-Match": header})
        assert resp.status_code == 304, header
        assert resp.content == b""
        assert resp.headers["etag"] == etag
    miss = await env.client.get(str(image["url"]), headers={"If-None-Match": '"nope"'})
    assert miss.status_code == 200


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=10-", 10, None),
        ("bytes=-5", -5, None),
        ("bytes=5-5", 5, 6),
        ("bytes=0-999999", 0, None),
        ("bytes=-999999", 0, None),
    ],
)
async def test_range_is_206_with_content_range(
    env: Env, header: str, start: int, end: int | None
) -> None:
    image, data = await _image(env)
    resp = await env.client.get(str(image["url"]), headers={"Range": header})
    assert resp.status_code == 206
    expected = data[start:end] if start >= 0 else data[start:]
    assert resp.content == expected
    first = data.index(expected) if start < 0 else start
    assert resp.headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert resp.headers["content-length"] == str(len(expected))
    _assert_binary_headers(resp.headers)


@pytest.mark.parametrize("header", ["bytes=99999-", "bytes=-0"])
async def test_unsatisfiable_range_is_416(env: Env, header: str) -> None:
    image, data = await _image(env)
    resp = await env.client.get(str(image["url"]), headers={"Range": header})
    assert_error(resp, 416, "INVALID_REQUEST")
    assert resp.headers["content-range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=x-y"])
async def test_ranges_we_do_not_serve_get_the_whole_file(env: Env, header: str) -> None:
    image, data = await _image(env)
    resp = await env.client.get(str(image["url"]), headers={"Range": header})
    assert resp.status_code == 200
    assert resp.content == data


async def test_if_range_with_another_etag_sends_everything(env: Env) -> None:
    image, data = await _image(env)
    resp = await env.client.get(
        str(image["url"]), headers={"Range": "bytes=0-3", "If-Range": '"stale"'}
    )
    assert resp.status_code == 200 and resp.content == data
    resp = await env.client.get(
        str(image["url"]), headers={"Range": "bytes=0-3", "If-Range": f'"{image["sha256"]}"'}
    )
    assert resp.status_code == 206 and resp.content == data[:4]


async def test_head_file_has_the_headers_and_no_body(env: Env) -> None:
    image, data = await _image(env)
    resp = await env.client.head(str(image["url"]))
    assert resp.status_code == 200
    assert resp.content == b""
    assert resp.headers["content-length"] == str(len(data))
    assert resp.headers["content-type"] == "image/png"
    _assert_binary_headers(resp.headers)
    ranged = await env.client.head(str(image["url"]), headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.headers["content-length"] == "10"


async def test_thumbnail_is_a_jpeg_within_the_box(env: Env) -> None:
    image, _ = await _image(env, png_bytes(900, 300, "navy"))
    resp = await env.client.get(str(image["thumbnail_url"]))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/jpeg"
    _assert_binary_headers(resp.headers)
    thumb = PILImage.open(io.BytesIO(resp.content))
    assert thumb.format == "JPEG"
    assert max(thumb.size) <= 300 and thumb.size[0] == 300
    etag = resp.headers["etag"]
    again = await env.client.get(str(image["thumbnail_url"]), headers={"If-None-Match": etag})
    assert again.status_code == 304
    head = await env.client.head(str(image["thumbnail_url"]))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(resp.content))
    meta = await env.client.get(f"/api/v1/images/{image['id']}")
    assert meta.json()["thumbnail_ready"] is True


async def test_thumbnail_filename_keeps_the_name(env: Env) -> None:
    token = await env.register()
    image = await env.uploaded(token, filename="holiday.png")
    resp = await env.client.get(str(image["thumbnail_url"]))
    assert 'filename="holiday.thumbnail.jpg"' in resp.headers["content-disposition"]


async def test_metadata_carries_x_cache(env: Env) -> None:
    image, _ = await _image(env)
    first = await env.client.get(f"/api/v1/images/{image['id']}")
    assert first.status_code == 200
    body = first.json()
    assert body["id"] == image["id"] and body["delete_token"] is None
    assert first.headers["x-cache"] in {"HIT", "MISS", "DISABLED"}
    second = await env.client.get(f"/api/v1/images/{image['id']}")
    if env.chitram.cache is not None and env.chitram.images.cache is not None:
        assert second.headers["x-cache"] == "HIT"


@pytest.mark.parametrize("suffix", ["", "/file", "/thumbnail"])
async def test_unknown_or_malformed_ids_are_404_image_not_found(env: Env, suffix: str) -> None:
    for image_id in (str(uuid.uuid4()), "not-a-uuid", "1"):
        resp = await env.client.get(f"/api/v1/images/{image_id}{suffix}")
        assert_error(resp, 404, "IMAGE_NOT_FOUND")


async def test_head_unknown_file_is_404_without_a_body(env: Env) -> None:
    resp = await env.client.head(f"/api/v1/images/{uuid.uuid4()}/file")
    assert resp.status_code == 404 and resp.content == b""


async def test_a_bad_token_on_a_public_route_is_401(env: Env) -> None:
    image, _ = await _image(env)
    for path in (str(image["url"]), f"/api/v1/images/{image['id']}", str(image["thumbnail_url"])):
        resp = await env.client.get(path, headers=bearer("forged"))
        assert_error(resp, 401, "INVALID_TOKEN")
        assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    ok = await env.client.get(str(image["url"]), headers=bearer(await env.register()))
    assert ok.status_code == 200
