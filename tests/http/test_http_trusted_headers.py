"""What a request's headers may and may not decide: the client address only through a trusted
proxy (X-Forwarded-For, Forwarded or X-Real-IP, read the same way everywhere), absolute URLs
never from ``Host``."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import httpx
import pytest
from httpkit import open_env

from chitram_falcon import access
from chitram_falcon.app import create_app

pytestmark = pytest.mark.anyio

RELAYS = [
    {"X-Real-IP": "203.0.113.9"},
    {"Forwarded": "for=203.0.113.9;proto=https"},
    {"Forwarded": 'for="[2001:db8::9]:4711"'},
    {"X-Forwarded-For": "203.0.113.9"},
]


@pytest.mark.parametrize("headers", RELAYS)
async def test_a_trusted_proxy_relaying_an_outside_client_gets_the_short_health_report(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async with open_env(tmp_path, trusted_proxies=("127.0.0.1",)) as env:
        direct = (await env.client.get("/health")).json()
        assert "checks" in direct  # the proxy's own request: this machine
        relayed = await env.client.get("/health", headers=headers)
        assert relayed.json() == {"status": direct["status"]}


@pytest.mark.parametrize("headers", RELAYS)
async def test_the_access_line_names_the_client_the_trusted_proxy_relays(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(client)s"))
    logger = logging.getLogger("chitram_falcon.access")
    old_level = logger.level
    access.flush()  # earlier tests' queued lines are not this test's
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with open_env(tmp_path, trusted_proxies=("127.0.0.1",)) as env:
            await env.client.get("/health/live", headers=headers)
            access.flush()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    expected = "2001:db8::9" if "2001" in json.dumps(headers) else "203.0.113.9"
    assert stream.getvalue().splitlines() == [expected]


async def test_an_untrusted_peer_cannot_name_another_client(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        for headers in RELAYS:
            relayed = await env.client.get("/health", headers=headers)
            assert "checks" not in relayed.json()  # relayed by an unknown proxy: short report


async def test_without_a_public_url_share_links_are_relative_and_never_the_host(
    tmp_path: Path,
) -> None:
    async with open_env(tmp_path, web_ui=True) as env:
        token = await env.register()
        image = await env.uploaded(token)
        app = create_app(env.chitram, web_ui=True)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.test") as client:
            page = await client.get(f"/images/{image['id']}", headers={"Host": "evil.test"})
        assert page.status_code == 200
        assert "evil.test" not in page.text
        assert f'value="/images/{image["id"]}"' in page.text


async def test_without_a_public_url_the_oauth_callback_never_takes_a_foreign_host(
    tmp_path: Path,
) -> None:
    settings = {
        "web_ui": True,
        "auth_providers": ("supabase", "local"),
        "supabase_url": "http://127.0.0.1:9",  # never called: refused before
        "supabase_key": "anon",
        "supabase_jwt_secret": "s" * 40,
        "oauth_providers": ("github",),
    }
    async with open_env(tmp_path, **settings) as env:
        app = create_app(env.chitram, web_ui=True)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.test") as client:
            start = await client.get("/auth/oauth/github")
        assert "evil.test" not in start.headers.get("location", "")
        assert start.status_code == 400
        assert "CHITRAM_PUBLIC_URL" in start.text and "Social sign-in needs" in start.text
