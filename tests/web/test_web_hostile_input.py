"""No input is a 500: lone surrogates in any JSON string of any route's body, and cursors that
hold deeply nested JSON or other hostile text, on the API and on the web UI's pages alike."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webkit import PASSWORD, WebEnv, open_web

pytestmark = pytest.mark.anyio

API = "/api/v1"
JSON = {"Content-Type": "application/json"}
BODY_ROUTES = [
    f"{API}/auth/register",
    f"{API}/auth/login",
    f"{API}/auth/token",
    f"{API}/auth/refresh",
    f"{API}/auth/password-reset",
    f"{API}/auth/logout",
    f"{API}/auth/oauth/token",
    f"{API}/images/0123456789abcdef/tags",
]
LISTINGS = [f"{API}/images", "/", "/ui/api/images"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebEnv]:
    async with open_web(tmp_path) as env:
        yield env


async def _bearer(web: WebEnv) -> dict[str, str]:
    """Signs the web client in and returns the same user's API header."""
    email = await web.register()
    login = await web.client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("field", ["password", "email", "refresh_token", "username"])
async def test_a_lone_surrogate_in_a_json_string_is_422(web: WebEnv, field: str) -> None:
    body = {"email": "a@example.com", "password": PASSWORD, "username": "a@example.com"}
    body["refresh_token"] = "chr_x"
    raw = json.dumps(body).replace(json.dumps(body[field]), '"ab\\ud800cd"', 1)
    for path in (f"{API}/auth/login", f"{API}/auth/refresh", f"{API}/auth/token"):
        resp = await web.client.post(path, content=raw, headers=JSON)
        assert resp.status_code == 422, (path, resp.text)
        assert resp.json()["detail"]["code"] == "VALIDATION_ERROR"


async def test_a_lone_surrogate_anywhere_in_the_body_is_422_on_every_route(web: WebEnv) -> None:
    headers = {**await _bearer(web), **JSON}
    for raw in ('{"\\udfff": 1}', '{"x": ["ok", {"y": "\\udbff"}]}'):
        for path in BODY_ROUTES:
            resp = await web.client.post(path, content=raw, headers=headers)
            assert resp.status_code == 422, (path, raw, resp.text)


@pytest.mark.parametrize("depth", [40, 2_000, 10_000])
async def test_a_cursor_of_deeply_nested_json_is_422(web: WebEnv, depth: int) -> None:
    headers = await _bearer(web)
    cursor = _b64(b"[" * depth + b"]" * depth)
    for path in LISTINGS:
        resp = await web.client.get(path, params={"cursor": cursor}, headers=headers)
        assert resp.status_code == 422, (path, resp.status_code, resp.text[:200])


async def test_a_cursor_naming_a_lone_surrogate_is_422(web: WebEnv) -> None:
    headers = await _bearer(web)
    cursor = _b64(b'["2024-01-01T00:00:00+00:00", "\\ud800"]')
    for path in LISTINGS:
        resp = await web.client.get(path, params={"cursor": cursor}, headers=headers)
        assert resp.status_code == 422, (path, resp.text[:200])


# Lone surrogates, which st.text() never draws, mixed into ordinary strings.
hostile_text = st.one_of(
    st.text(max_size=8),
    st.lists(
        st.one_of(st.text(max_size=3), st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}")),
        max_size=4,
    ).map("".join),
)
hostile_json = st.recursive(
    st.sampled_from(["null", "true", "false", "0", "-1.5e3"])
    | hostile_text.map(lambda t: json.dumps(t).replace("\\\\u", "\\u")),
    lambda inner: (
        st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
        | st.lists(st.tuples(hostile_text, inner), max_size=3).map(
            lambda kvs: "{" + ",".join(f'"{k}":{v}' for k, v in kvs) + "}"
        )
    ),
    max_leaves=30,
)
hostile_cursor = st.one_of(
    st.text(max_size=40),
    hostile_json.map(lambda text: _b64(text.encode("utf-8", "surrogatepass"))),
    st.integers(1, 3_000).map(lambda n: _b64(b"[" * n + b"]" * n)),
    st.binary(max_size=80).map(_b64),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(BODY_ROUTES),
    body=hostile_json,
    anonymous=st.booleans(),
)
async def test_no_json_body_on_any_route_is_a_5xx(
    web: WebEnv, path: str, body: str, anonymous: bool
) -> None:
    headers = dict(JSON)
    if not anonymous:
        headers["Authorization"] = "Bearer not-a-token"
    resp = await web.client.post(
        path, content=body.encode("utf-8", "surrogatepass"), headers=headers
    )
    assert resp.status_code < 500, (path, body, resp.text)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(LISTINGS), cursor=hostile_cursor)
async def test_no_cursor_on_any_listing_is_a_5xx(web: WebEnv, path: str, cursor: str) -> None:
    if not web.client.cookies:
        await web.register()
    try:
        resp = await web.client.get(path, params={"cursor": cursor})
    except httpx.InvalidURL:
        return  # not sendable over HTTP at all
    assert resp.status_code < 500, (path, cursor, resp.text[:200])
