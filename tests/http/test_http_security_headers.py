"""Every answer of every kind carries exactly the security headers ``security_headers`` lists for
its kind: API JSON, errors, redirects, an image's file, thumbnail and variant (cold through
Falcon and warm before it, full, HEAD, 304 and ranged), web pages (error pages included) and
static assets; with HSTS over https only."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpkit import Env, bearer, open_env, png_bytes

from chitram_falcon.security import Policy, security_headers

pytestmark = pytest.mark.anyio

ALL_NAMES = {
    name.lower() for policy in Policy for https in (False, True)
    for name, _ in security_headers(policy, https)
}  # fmt: skip


def assert_security(resp: httpx.Response, policy: Policy, https: bool) -> None:
    expected = {name.lower(): value for name, value in security_headers(policy, https)}
    got = {name: resp.headers[name] for name in ALL_NAMES if name in resp.headers}
    assert got == expected, (resp.request.method, str(resp.request.url), resp.status_code)


def test_the_lists_are_what_docs_promise() -> None:
    for policy in Policy:
        plain = dict(security_headers(policy, False))
        assert plain["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in plain
        assert dict(security_headers(policy, True)) == {
            **plain,
            "Strict-Transport-Security": "max-age=31536000",
        }
    assert dict(security_headers(Policy.FILE, False))["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    )
    page = dict(security_headers(Policy.PAGE, False))
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert page["X-Frame-Options"] == "DENY"


async def _kinds(client: httpx.AsyncClient, token: str, image: dict[str, Any]) -> Any:
    """(response, policy) for one answer of every kind the app gives."""
    image_id = image["id"]
    auth = bearer(token)
    missing = uuid.uuid4()
    yield await client.get("/api/v1/images", headers=auth), Policy.API
    yield await client.get("/health"), Policy.API
    yield await client.get("/openapi.json"), Policy.API
    yield await client.get("/no/such/route"), Policy.API
    yield await client.get("/api/v1/images"), Policy.API  # 401
    yield await client.get(f"/api/v1/images/{missing}/file"), Policy.API  # 404 envelope
    yield await client.post("/api/v1/images/upload", headers=auth), Policy.API  # 422
    yield await client.get("/"), Policy.API  # the gallery's redirect to sign in
    for _ in range(3):  # cold (Falcon), then warm (answered before Falcon)
        yield await client.get(f"/api/v1/images/{image_id}"), Policy.API
        for tail in ("file", "thumbnail", "variants/w320"):
            url = f"/api/v1/images/{image_id}/{tail}"
            full = await client.get(url)
            yield full, Policy.FILE
            yield await client.head(url), Policy.FILE
            yield await client.get(url, headers={"Range": "bytes=0-9"}), Policy.FILE
            yield (
                await client.get(url, headers={"If-None-Match": full.headers["etag"]}),
                (Policy.FILE),
            )
    yield await client.get(f"/api/v1/images/{image_id}/file", headers=auth), Policy.FILE
    yield await client.get(f"/api/v1/images/{image_id}/file?x=1"), Policy.FILE
    yield await client.get("/signin"), Policy.PAGE
    yield await client.get("/register"), Policy.PAGE
    yield await client.get(f"/images/{missing}"), Policy.PAGE  # an HTML error page
    yield await client.get("/ui/static/app.css"), Policy.API
    yield await client.get("/ui/static/nothing.css"), Policy.API  # 404 envelope
    yield await client.get("/ui/api/images"), Policy.API  # 401 envelope


@pytest.mark.parametrize("https", [False, True])
async def test_every_kind_of_answer_carries_its_security_headers(
    tmp_path: Path, https: bool
) -> None:
    async with open_env(tmp_path, web_ui=True) as env:
        token = await env.register()
        image = await env.uploaded(token, png_bytes(160, 90, "teal"))
        base = "https://testserver" if https else "http://testserver"
        transport = httpx.ASGITransport(app=env.app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            kinds = [item async for item in _kinds(client, token, image)]
    statuses = {resp.status_code for resp, _ in kinds}
    assert {200, 206, 303, 304, 401, 404, 422} <= statuses
    for resp, policy in kinds:
        assert_security(resp, policy, https)


async def test_forwarded_https_from_a_trusted_proxy_gets_hsts_on_every_kind(
    tmp_path: Path,
) -> None:
    async with open_env(tmp_path, trusted_proxies=("127.0.0.1/32",), web_ui=True) as env:
        token = await env.register()
        image = await env.uploaded(token, png_bytes(160, 90, "olive"))
        headers = {"X-Forwarded-Proto": "https"}
        transport = httpx.ASGITransport(app=env.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as client:
            kinds = [item async for item in _kinds(client, token, image)]
    for resp, policy in kinds:
        assert_security(resp, policy, True)


async def test_warm_reads_were_answered_before_falcon_in_these_checks(tmp_path: Path) -> None:
    """The kinds above include the answers sent before Falcon, not only Falcon's."""
    async with open_env(tmp_path, web_ui=True) as env:
        await _count_warm(env)


async def _count_warm(env: Env) -> None:
    token = await env.register()
    image = await env.uploaded(token, png_bytes(160, 90, "navy"))
    answered: list[bool] = []
    original = env.app.fast_reads.answer

    async def counted(scope: dict[str, Any], send: Any, extra: tuple[bytes, bytes]) -> int | None:
        result = await original(scope, send, extra)
        answered.append(result is not None)
        return result

    env.app.fast_reads.answer = counted  # type: ignore[method-assign]
    _ = [item async for item in _kinds(env.client, token, image)]
    assert any(answered)
