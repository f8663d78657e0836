"""POST /api/v1/images/upload-url: the fetch is guarded at connect time, on every hop.

The remote servers listen on 127.0.0.x and count every request that reached them; 127.0.0.1 is
opened with ``CHITRAM_FETCH_ALLOW_NETWORKS`` only where a test says so.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from httpkit import Env, assert_error, bearer, jpeg_bytes, open_env, png_bytes
from originkit import Drip, Handler, Origin, body, declared_then_wait, endless, redirect, serve

pytestmark = pytest.mark.anyio

UPLOAD_URL = "/api/v1/images/upload-url"


@asynccontextmanager
async def opened(tmp_path: Path, origin: Origin, **overrides: Any) -> AsyncIterator[Env]:
    values: dict[str, Any] = {"fetch_allow_ports": (80, 443, origin.port)}
    values.update(overrides)
    async with open_env(tmp_path, **values) as env:
        yield env


async def post(env: Env, token: str, url: object) -> Any:
    return await env.client.post(UPLOAD_URL, json={"url": url}, headers=bearer(token))


async def test_an_allowed_server_s_jpeg_is_stored_with_its_type_from_the_bytes(
    tmp_path: Path,
) -> None:
    data = jpeg_bytes(64, 48)
    with serve({"/cat.jpg": body(data, "text/plain")}) as origin:
        async with opened(tmp_path, origin, fetch_allow_networks=("127.0.0.0/8",)) as env:
            token = await env.register()
            resp = await post(env, token, origin.url("/cat.jpg"))
            assert resp.status_code == 201, resp.text
            image = resp.json()
            assert image["content_type"] == "image/jpeg"
            assert image["filename"] == "cat.jpg"
            assert (image["width"], image["height"]) == (64, 48)
            got = await env.client.get(image["url"], headers=bearer(token))
            assert got.status_code == 200
    assert origin.hits == ["/cat.jpg"]


LOOPBACK_FORMS = [
    "http://127.0.0.1:{port}/cat.jpg",
    "http://localhost:{port}/cat.jpg",
    "http://[::1]:{port}/cat.jpg",
    "http://[::ffff:127.0.0.1]:{port}/cat.jpg",
    "http://[::ffff:7f00:1]:{port}/cat.jpg",
    "http://0x7f000001:{port}/cat.jpg",
    "http://2130706433:{port}/cat.jpg",
    "http://017700000001:{port}/cat.jpg",
    "http://127.1:{port}/cat.jpg",
    "http://0.0.0.0:{port}/cat.jpg",
    "http://0:{port}/cat.jpg",
    "http://[::]:{port}/cat.jpg",
]
"""Ways of writing an address of this machine: each reaches the test servers (on 127.0.0.1 and
::1) when loopback is opened, so a fetch that got through would be counted."""

OTHER_FORBIDDEN = [
    "http://169.254.169.254:{port}/latest/meta-data/",
    "http://10.0.0.1:{port}/cat.jpg",
    "http://192.168.1.1:{port}/cat.jpg",
    "http://100.64.0.1:{port}/cat.jpg",
    "http://[fd00::1]:{port}/cat.jpg",
    "http://[fe80::1]:{port}/cat.jpg",
    "http://[::ffff:10.0.0.1]:{port}/cat.jpg",
    "http://224.0.0.1:{port}/cat.jpg",
]


@contextmanager
def loopback(routes: dict[str, Handler]) -> Iterator[tuple[Origin, Origin]]:
    """The same routes on 127.0.0.1 and on ::1, at one port."""
    for _attempt in range(20):
        with serve(routes) as v4:
            try:
                twin = serve(routes, host="::1", port=v4.port)
                v6 = twin.__enter__()
            except OSError:  # that port is taken on ::1: another one
                continue
            try:
                yield v4, v6
            finally:
                twin.__exit__(None, None, None)
            return
    raise AssertionError("no port free on both 127.0.0.1 and ::1")


@pytest.mark.parametrize("url", LOOPBACK_FORMS + OTHER_FORBIDDEN)
async def test_a_forbidden_address_is_refused_without_a_request_reaching_it(
    tmp_path: Path, url: str
) -> None:
    with loopback({"/cat.jpg": body(jpeg_bytes())}) as (v4, v6):
        async with opened(tmp_path, v4) as env:
            token = await env.register()
            resp = await post(env, token, url.format(port=v4.port))
            assert_error(resp, 400, "URL_NOT_ALLOWED")
            listed = await env.client.get("/api/v1/images", headers=bearer(token))
            assert listed.json()["items"] == []
    assert v4.hits == [] and v6.hits == []


@pytest.mark.parametrize("url", LOOPBACK_FORMS)
async def test_each_loopback_form_reaches_the_test_server_once_loopback_is_opened(
    tmp_path: Path, url: str
) -> None:
    """The control for the refusals above: these URLs do lead to a counting server."""
    with loopback({"/cat.jpg": body(jpeg_bytes())}) as (v4, v6):
        async with opened(
            tmp_path, v4, fetch_allow_networks=("127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128")
        ) as env:
            token = await env.register()
            resp = await post(env, token, url.format(port=v4.port))
            assert resp.status_code == 201, resp.text
    assert v4.hits + v6.hits == ["/cat.jpg"]


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a.jpg", "file:///etc/passwd", "http://example.com:22/a.jpg"],
)
async def test_other_schemes_and_ports_are_refused(tmp_path: Path, url: str) -> None:
    async with open_env(tmp_path) as env:
        token = await env.register()
        assert_error(await post(env, token, url), 400, "URL_NOT_ALLOWED")


@pytest.mark.parametrize("url", ["", 5, "not a url at all", None])
async def test_a_missing_or_malformed_url_is_a_validation_error(
    tmp_path: Path, url: object
) -> None:
    async with open_env(tmp_path) as env:
        token = await env.register()
        resp = await post(env, token, url)
        assert resp.status_code in (400, 422), resp.text
        assert resp.json()["detail"]["code"] in ("VALIDATION_ERROR", "URL_NOT_ALLOWED")


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/cat.jpg",
        "http://localhost:{port}/cat.jpg",
        "http://[::ffff:127.0.0.1]:{port}/cat.jpg",
        "http://0x7f000001:{port}/cat.jpg",
    ],
)
async def test_a_redirect_from_an_allowed_host_to_loopback_is_refused_at_that_hop(
    tmp_path: Path, target: str
) -> None:
    """Only the first host (on 127.0.0.2) is opened; it redirects to the server on 127.0.0.1."""
    with serve({"/cat.jpg": body(jpeg_bytes())}) as inside:
        routes = {"/go": redirect(target.format(port=inside.port))}
        with serve(routes, host="127.0.0.2") as origin:
            async with opened(
                tmp_path,
                origin,
                fetch_allow_networks=("127.0.0.2/32",),
                fetch_allow_ports=(origin.port, inside.port),
            ) as env:
                token = await env.register()
                resp = await post(env, token, origin.url("/go"))
                assert_error(resp, 400, "URL_NOT_ALLOWED")
            # The control: with the whole of loopback opened, the same redirect gets through.
            async with opened(
                tmp_path / "open",
                origin,
                fetch_allow_networks=("127.0.0.0/8",),
                fetch_allow_ports=(origin.port, inside.port),
            ) as env:
                token = await env.register()
                assert (await post(env, token, origin.url("/go"))).status_code == 201
    assert origin.hits == ["/go", "/go"]
    assert inside.hits == ["/cat.jpg"]


async def test_a_redirect_to_a_private_address_is_refused_at_that_hop(tmp_path: Path) -> None:
    with serve({"/cat.jpg": body(jpeg_bytes())}, host="127.0.0.2") as inside:
        routes = {"/go": redirect(inside.url("/cat.jpg"))}
        with serve(routes) as origin:
            async with opened(
                tmp_path,
                origin,
                fetch_allow_networks=("127.0.0.1/32",),
                fetch_allow_ports=(origin.port, inside.port),
            ) as env:
                token = await env.register()
                resp = await post(env, token, origin.url("/go"))
                assert_error(resp, 400, "URL_NOT_ALLOWED")
    assert origin.hits == ["/go"]
    assert inside.hits == []


async def test_redirects_are_followed_up_to_three_hops(tmp_path: Path) -> None:
    routes = {
        "/r1": redirect("/r2"),
        "/r2": redirect("/r3"),
        "/r3": redirect("/cat.jpg", 301),
        "/loop": redirect("/loop"),
        "/cat.jpg": body(jpeg_bytes()),
    }
    with serve(routes) as origin:
        async with opened(tmp_path, origin, fetch_allow_networks=("127.0.0.0/8",)) as env:
            token = await env.register()
            assert (await post(env, token, origin.url("/r1"))).status_code == 201
            resp = await post(env, token, origin.url("/loop"))
            assert_error(resp, 502, "FETCH_FAILED")
            assert "redirect" in resp.json()["detail"]["message"]
    assert origin.hits.count("/loop") == 4  # the first request and three redirects


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(tmp_path: Path) -> None:
    """The server announces 6 GB and sends nothing: waiting for the body would end in the fetch
    timeout (502); the refusal comes from the header alone."""
    release = threading.Event()
    routes = {"/huge.jpg": declared_then_wait(6 * 1024**3, release)}
    try:
        with serve(routes) as origin:
            async with opened(
                tmp_path, origin, fetch_allow_networks=("127.0.0.0/8",), fetch_timeout=120.0
            ) as env:
                token = await env.register()
                resp = await post(env, token, origin.url("/huge.jpg"))
                assert_error(resp, 413, "FILE_TOO_LARGE")
                assert [k async for k in env.chitram.storage.keys("tmp/")] == []
            release.set()
    finally:
        release.set()
    assert origin.hits == ["/huge.jpg"]


async def test_a_body_past_the_limit_stops_the_download(tmp_path: Path) -> None:
    routes = {"/endless.jpg": endless(jpeg_bytes())}
    with serve(routes) as origin:
        async with opened(
            tmp_path, origin, fetch_allow_networks=("127.0.0.0/8",), max_upload_bytes=300_000
        ) as env:
            token = await env.register()
            resp = await post(env, token, origin.url("/endless.jpg"))
            assert_error(resp, 413, "FILE_TOO_LARGE")
            assert (await env.chitram.sweep(older_than=0)).orphans_removed == 0


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "image/jpeg"])
async def test_an_html_page_is_refused_whatever_its_content_type(
    tmp_path: Path, content_type: str
) -> None:
    routes = {"/page": body(b"<!doctype html><html><body>hi</body></html>", content_type)}
    with serve(routes) as origin:
        async with opened(tmp_path, origin, fetch_allow_networks=("127.0.0.0/8",)) as env:
            token = await env.register()
            assert_error(await post(env, token, origin.url("/page")), 400, "INVALID_FILE_FORMAT")
            listed = await env.client.get("/api/v1/images", headers=bearer(token))
            assert listed.json()["items"] == []
            assert [k async for k in env.chitram.storage.keys("tmp/")] == []
    assert origin.hits == ["/page"]


async def test_a_slow_drip_is_cut_at_the_deadline(tmp_path: Path) -> None:
    """One byte every 0.2 s for 2000 s: the fetch gives up at its 1 s budget and hangs up, which
    the server sees long before its last byte."""
    slow = Drip(jpeg_bytes()[:100], every=0.2, count=10_000)
    with serve({"/slow.jpg": slow}) as origin:
        async with opened(
            tmp_path, origin, fetch_allow_networks=("127.0.0.0/8",), fetch_timeout=1.0
        ) as env:
            token = await env.register()
            resp = await post(env, token, origin.url("/slow.jpg"))
            detail = assert_error(resp, 502, "FETCH_FAILED")
            assert "too long" in detail["message"] or "longer" in detail["message"]
            assert slow.cut.wait(60), "the server never saw the fetch hang up"
            assert slow.sent < slow.count
            assert [k async for k in env.chitram.storage.keys("tmp/")] == []
            assert (await env.chitram.sweep(older_than=0)).orphans_removed == 0


@pytest.mark.parametrize("status", [404, 500])
async def test_an_upstream_error_is_a_502_with_the_reason(tmp_path: Path, status: int) -> None:
    with serve({"/x.png": body(png_bytes(), "image/png", status=status)}) as origin:
        async with opened(tmp_path, origin, fetch_allow_networks=("127.0.0.0/8",)) as env:
            token = await env.register()
            resp = await post(env, token, origin.url("/x.png"))
            detail = assert_error(resp, 502, "FETCH_FAILED")
            assert str(status) in detail["message"]


async def test_a_refused_connection_is_a_502(tmp_path: Path) -> None:
    with serve({}) as origin:
        port = origin.port
    async with open_env(
        tmp_path, fetch_allow_networks=("127.0.0.0/8",), fetch_allow_ports=(port,)
    ) as env:
        token = await env.register()
        resp = await post(env, token, f"http://127.0.0.1:{port}/gone.jpg")
        assert_error(resp, 502, "FETCH_FAILED")


async def test_url_uploads_need_a_caller_and_share_the_upload_rate_limit(tmp_path: Path) -> None:
    from chitram_core.settings import RateLimit

    with serve({"/cat.png": body(png_bytes(), "image/png")}) as origin:
        async with opened(
            tmp_path,
            origin,
            fetch_allow_networks=("127.0.0.0/8",),
            upload_rate_limit=RateLimit(2, 60),
        ) as env:
            anonymous = await env.client.post(UPLOAD_URL, json={"url": origin.url("/cat.png")})
            assert anonymous.status_code == 401
            token = await env.register()
            assert (await env.upload(token)).status_code == 201
            assert (await post(env, token, origin.url("/cat.png"))).status_code == 201
            resp = await post(env, token, origin.url("/cat.png"))
            assert_error(resp, 429, "RATE_LIMIT_EXCEEDED")


async def test_a_declared_length_over_the_remaining_quota_is_refused_before_the_body(
    tmp_path: Path,
) -> None:
    """As for the size limit: the announced length alone refuses, the body never awaited."""
    release = threading.Event()
    routes = {"/big.jpg": declared_then_wait(50_000, release)}
    try:
        with serve(routes) as origin:
            async with opened(
                tmp_path, origin, fetch_allow_networks=("127.0.0.0/8",), fetch_timeout=120.0
            ) as env:
                token = await env.register()
                me = await env.client.get("/api/v1/auth/me", headers=bearer(token))
                await env.chitram.users.set_quota(me.json()["id"], bytes=49_999)
                resp = await post(env, token, origin.url("/big.jpg"))
                assert_error(resp, 413, "QUOTA_EXCEEDED")
            release.set()
    finally:
        release.set()
    assert origin.hits == ["/big.jpg"]
