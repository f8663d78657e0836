"""The warm read path: what a repeated public read answers from per-image prepared headers, JSON
and in-memory bytes is exactly what the first (cold) read answered, and nothing prepared ever
outlives the image it was prepared for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from httpkit import Env, assert_error, open_env, png_bytes

from chitram_core import to_json
from chitram_falcon import access

pytestmark = pytest.mark.anyio

ROUTES = ["file", "thumbnail", "metadata"]
BINARY = ["file", "thumbnail"]
VARYING = {"x-cache", "x-request-id"}  # the request id is new on every request


def _url(image: dict[str, Any], route: str) -> str:
    return {
        "file": str(image["url"]),
        "thumbnail": str(image["thumbnail_url"]),
        "metadata": str(image["url"]).removesuffix("/file"),
    }[route]


def _headers(resp: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k not in VARYING}


async def _uploaded(env: Env, data: bytes | None = None) -> dict[str, Any]:
    token = await env.register()
    return await env.uploaded(token, data or png_bytes(120, 80, "teal"))


async def _warm(env: Env, image: dict[str, Any]) -> None:
    """Read every route until each answers from its warm path (cache HIT, bytes in memory)."""
    for _ in range(3):
        for route in ROUTES:
            assert (await env.client.get(_url(image, route))).status_code == 200
            assert (await env.client.head(_url(image, route))).status_code in {200, 405}
    meta = await env.client.get(_url(image, "metadata"))
    assert meta.headers["x-cache"] == "HIT"


@pytest.mark.parametrize("route", ROUTES)
async def test_warm_answers_equal_the_cold_one(env: Env, route: str) -> None:
    image = await _uploaded(env)
    url = _url(image, route)
    cold = await env.client.get(url)
    cold_head = await env.client.head(url)
    warm = [await env.client.get(url) for _ in range(3)]
    warm_head = [await env.client.head(url) for _ in range(2)]
    assert cold.status_code == 200, cold.text
    for resp in warm:
        assert resp.status_code == 200
        assert resp.content == cold.content
        assert _headers(resp) == _headers(cold)
    for resp in warm_head:
        assert resp.status_code == cold_head.status_code
        assert resp.content == b""
        assert _headers(resp) == _headers(cold_head)


async def test_warm_metadata_is_the_sdk_image_as_json_with_x_cache(env: Env) -> None:
    image = await _uploaded(env)
    url = _url(image, "metadata")
    statuses = [(await env.client.get(url)).headers["x-cache"] for _ in range(3)]
    assert statuses == ["MISS", "HIT", "HIT"]
    resp = await env.client.get(url)
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == to_json(await env.chitram.images.get(str(image["id"])))
    assert resp.json()["delete_token"] is None


@pytest.mark.parametrize("route", BINARY)
async def test_warm_conditional_reads_are_304_with_the_validators(env: Env, route: str) -> None:
    image = await _uploaded(env)
    await _warm(env, image)
    url = _url(image, route)
    full = await env.client.get(url)
    etag = full.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        resp = await env.client.get(url, headers={"If-None-Match": header})
        assert resp.status_code == 304, header
        assert resp.content == b""
        assert resp.headers["etag"] == etag
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["cache-control"] == full.headers["cache-control"]
    miss = await env.client.get(url, headers={"If-None-Match": '"nope"'})
    assert miss.status_code == 200 and miss.content == full.content


def _boundaries(size: int) -> list[int]:
    return sorted({0, 1, 2, size // 2, size - 2, size - 1, size, size + 1, 10 * size})


@pytest.mark.parametrize("route", BINARY)
async def test_warm_ranges_are_the_right_bytes_at_every_boundary(env: Env, route: str) -> None:
    image = await _uploaded(env)
    await _warm(env, image)
    url = _url(image, route)
    data = (await env.client.get(url)).content
    size = len(data)
    cases: list[tuple[str, int | None, int]] = []  # (header, first byte or None for 416, end)
    for first in _boundaries(size):
        cases.append((f"bytes={first}-", first if first < size else None, size))
        for last in _boundaries(size):
            if last >= first:
                end = min(last + 1, size)
                cases.append((f"bytes={first}-{last}", first if first < size else None, end))
    for suffix in _boundaries(size):
        start = max(0, size - suffix)
        cases.append((f"bytes=-{suffix}", start if suffix > 0 else None, size))
    for header, first, end in cases:
        resp = await env.client.get(url, headers={"Range": header})
        if first is None:
            assert_error(resp, 416, "INVALID_REQUEST")
            assert resp.headers["content-range"] == f"bytes */{size}", header
            continue
        assert resp.status_code == 206, header
        assert resp.content == data[first:end], header
        assert resp.headers["content-range"] == f"bytes {first}-{end - 1}/{size}", header
        assert resp.headers["content-length"] == str(end - first), header
        head = await env.client.head(url, headers={"Range": header})
        assert head.status_code == 206 and head.headers["content-length"] == str(end - first)
    stale = await env.client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == data


async def _assert_gone(env: Env, image: dict[str, Any], etag: dict[str, str]) -> None:
    for route in ROUTES:
        url = _url(image, route)
        assert_error(await env.client.get(url), 404, "IMAGE_NOT_FOUND")
        if route in BINARY:
            head = await env.client.head(url)
            assert head.status_code == 404 and head.content == b""
            conditional = await env.client.get(url, headers={"If-None-Match": etag[route]})
            assert_error(conditional, 404, "IMAGE_NOT_FOUND")
            ranged = await env.client.get(url, headers={"Range": "bytes=0-9"})
            assert_error(ranged, 404, "IMAGE_NOT_FOUND")


async def test_a_deleted_image_is_refused_on_every_warm_read(env: Env) -> None:
    token = await env.register()
    image = await env.uploaded(token, png_bytes(120, 80, "olive"))
    await _warm(env, image)
    etag = {route: (await env.client.get(_url(image, route))).headers["etag"] for route in BINARY}
    deleted = await env.client.delete(
        _url(image, "metadata"), headers={"Authorization": f"Bearer {token}"}
    )
    assert deleted.status_code == 204
    await _assert_gone(env, image, etag)


async def test_the_same_bytes_uploaded_again_are_served_under_the_new_id_only(env: Env) -> None:
    token = await env.register()
    data = png_bytes(150, 90, "maroon")
    first = await env.uploaded(token, data)
    await _warm(env, first)
    thumb = (await env.client.get(_url(first, "thumbnail"))).content
    etag = {route: (await env.client.get(_url(first, route))).headers["etag"] for route in BINARY}
    auth = {"Authorization": f"Bearer {token}"}
    assert (await env.client.delete(_url(first, "metadata"), headers=auth)).status_code == 204
    second = await env.uploaded(token, data)
    assert second["id"] != first["id"]
    await _assert_gone(env, first, etag)
    for _ in range(3):
        assert (await env.client.get(_url(second, "file"))).content == data
        again = await env.client.get(_url(second, "thumbnail"))
        assert again.status_code == 200 and again.content == thumb
        meta = await env.client.get(_url(second, "metadata"))
        assert meta.json()["id"] == second["id"]


async def test_with_the_cache_off_warm_reads_are_correct_and_deletes_are_seen(
    tmp_path: Path,
) -> None:
    async with open_env(tmp_path, cache_url="off") as env:
        token = await env.register()
        data = png_bytes(100, 70, "navy")
        image = await env.uploaded(token, data)
        for _ in range(3):
            assert (await env.client.get(_url(image, "file"))).content == data
            assert (await env.client.get(_url(image, "thumbnail"))).status_code == 200
            meta = await env.client.get(_url(image, "metadata"))
            assert meta.headers["x-cache"] == "DISABLED"
        etag = {r: (await env.client.get(_url(image, r))).headers["etag"] for r in BINARY}
        auth = {"Authorization": f"Bearer {token}"}
        assert (await env.client.delete(_url(image, "metadata"), headers=auth)).status_code == 204
        await _assert_gone(env, image, etag)


@pytest.mark.parametrize("route", ROUTES)
async def test_a_bad_token_on_a_warm_public_read_is_still_401(env: Env, route: str) -> None:
    image = await _uploaded(env)
    await _warm(env, image)
    for header in ("Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer"):
        resp = await env.client.get(_url(image, route), headers={"Authorization": header})
        assert_error(resp, 401, "INVALID_TOKEN")


# Warm reads answered before Falcon (chitram_falcon/fastread.py) -----------------------------


def _count_prepared(env: Env) -> list[bool]:
    """Record, per read, whether it was answered from the prepared path (True) or by Falcon."""
    answered: list[bool] = []
    original = env.app.fast_reads.answer

    async def counted(scope: dict[str, Any], send: Any, extra: tuple[bytes, bytes]) -> int | None:
        result = await original(scope, send, extra)
        answered.append(result is not None)
        return result

    env.app.fast_reads.answer = counted  # type: ignore[method-assign]
    return answered


async def test_warm_anonymous_reads_are_answered_before_falcon_and_cold_ones_are_not(
    env: Env,
) -> None:
    """The equality tests above compare the two paths only if both are taken."""
    image = await _uploaded(env)
    answered = _count_prepared(env)
    for route in ROUTES:
        assert (await env.client.get(_url(image, route))).status_code == 200
    assert answered == [False, False, False]  # nothing prepared yet: Falcon answers
    answered.clear()
    await _warm(env, image)
    # The last round of _warm (GET and HEAD of each route, HEAD metadata being Falcon's 405)
    # and its closing metadata GET.
    assert answered[-7:] == [True, True, True, True, True, False, True]
    answered.clear()
    for headers in (
        {"Range": "bytes=0-3"},
        {"If-None-Match": '"x"'},
        {"If-Range": '"x"', "Range": "bytes=0-1"},
        {"Authorization": "Bearer nope"},
    ):
        await env.client.get(_url(image, "file"), headers=headers)
    assert answered == [False, False, False, False]


async def test_a_host_middleware_sees_every_read_warm_ones_included(env: Env) -> None:
    seen: list[str] = []

    class Counting:
        async def process_request(self, req: Any, resp: Any) -> None:
            seen.append(req.path)

    image = await _uploaded(env)
    await _warm(env, image)
    env.app.add_middleware(Counting())
    for route in ROUTES:
        assert (await env.client.get(_url(image, route))).status_code == 200
    assert len(seen) == 3


async def test_a_route_a_host_replaces_is_answered_by_the_host(env: Env) -> None:
    class Replacement:
        async def on_get(self, req: Any, resp: Any, image_id: str) -> None:
            resp.text = f"host {image_id}"

    image = await _uploaded(env)
    await _warm(env, image)
    env.app.add_route("/api/v1/images/{image_id}/file", Replacement())
    resp = await env.client.get(_url(image, "file"))
    assert resp.text == f"host {image['id']}"
    assert (await env.client.get(_url(image, "thumbnail"))).headers["etag"]  # still ours


@pytest.mark.parametrize("route", ROUTES)
async def test_warm_reads_over_https_carry_hsts_as_cold_ones_do(tmp_path: Path, route: str) -> None:
    async with open_env(tmp_path, trusted_proxies=("10.0.0.0/8",)) as env:
        image = await _uploaded(env)
        url = _url(image, route)
        # httpx's ASGI transport reports the client as 127.0.0.1: not a trusted proxy.
        cases = [
            ("https://testserver", {}, True),
            ("http://testserver", {"X-Forwarded-Proto": "https"}, False),
        ]
        for base, headers, hsts in cases:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=env.app), base_url=base
            ) as client:
                answers = [await client.get(url, headers=headers) for _ in range(4)]
            for resp in answers:
                assert resp.status_code == 200
                assert ("strict-transport-security" in resp.headers) is hsts, (base, headers)
                assert _headers(resp) == _headers(answers[0])


async def test_a_forwarded_https_from_a_trusted_proxy_gets_hsts_on_warm_reads(
    tmp_path: Path,
) -> None:
    async with open_env(tmp_path, trusted_proxies=("127.0.0.1/32",)) as env:
        image = await _uploaded(env)
        answered = _count_prepared(env)
        for proto, hsts in (("https", True), ("http", False), ("http, https", True)):
            answers = [
                await env.client.get(_url(image, "file"), headers={"X-Forwarded-Proto": proto})
                for _ in range(3)
            ]
            for resp in answers:
                assert ("strict-transport-security" in resp.headers) is hsts, proto
        assert answered[-1] is True


async def test_warm_reads_are_logged_and_counted_under_their_route(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    image = await _uploaded(env)
    await _warm(env, image)
    answered = _count_prepared(env)
    access.flush()  # the warm-up's lines out first: only the measured request's is captured
    caplog.clear()
    with caplog.at_level("INFO", logger="chitram_falcon.access"):
        resp = await env.client.get(_url(image, "file"))
        access.flush()
    assert answered == [True]
    records = [r for r in caplog.records if r.name == "chitram_falcon.access"]
    assert [(r.method, r.route, r.status, r.bytes) for r in records] == [  # type: ignore[attr-defined]
        ("GET", "/api/v1/images/{image_id}/file", 200, len(resp.content))
    ]
    assert resp.headers["x-request-id"]


@pytest.mark.parametrize("form", ["one", "list", "generator"])
async def test_a_host_middleware_in_any_form_falcon_takes_turns_the_prepared_reads_off(
    env: Env, form: str
) -> None:
    class Counting:
        async def process_request(self, req: Any, resp: Any) -> None:
            pass

    image = await _uploaded(env)
    await _warm(env, image)
    middleware = Counting()
    env.app.add_middleware(
        {"one": middleware, "list": [middleware], "generator": (m for m in [middleware])}[form]
    )
    answered = _count_prepared(env)
    assert (await env.client.get(_url(image, "file"))).status_code == 200
    assert answered == [False]


def test_the_app_class_overrides_nothing_private_of_falcon() -> None:
    """Routing, middleware and the route template go through Falcon's public API only."""
    import falcon.asgi

    from chitram_falcon.asgi import ChitramApp

    own = {name for name in vars(ChitramApp) if name.startswith("_") and not name.endswith("__")}
    assert not own & set(dir(falcon.asgi.App)), own
