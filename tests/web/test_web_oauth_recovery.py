"""Social sign-in when things go wrong, over HTTP: Supabase dead when "Continue with GitHub" is
clicked or when the code is exchanged (words, not exception names, and the breaker opens), a
replayed callback in a signed-in browser, and the linking page's checks."""

# ruff: noqa: F811 (fixtures imported from test_web_oauth are parameters by name)
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from netkit import free_port
from oauthkit import FakeGoTrue, gotrue_settings
from test_web_oauth import (  # noqa: F401 (the fixtures are used by name)
    anyio_backend,
    browser_dance,
    cookie_of,
    gotrue,
    gotrue_server,
    web,
)
from webkit import WebEnv, open_web

pytestmark = pytest.mark.anyio

FRIENDLY = "GitHub sign-in is unavailable right now"


@pytest.fixture
async def dead(tmp_path: Path, gotrue: FakeGoTrue) -> AsyncIterator[WebEnv]:
    """Supabase configured at an address where nothing listens (connection refused)."""
    settings = {**gotrue_settings(gotrue), "supabase_url": f"http://127.0.0.1:{free_port()}"}
    async with open_web(tmp_path, **settings) as env:
        yield env


async def test_continue_with_github_while_supabase_is_dead_stays_here_and_says_so(
    dead: WebEnv,
) -> None:
    for _ in range(dead.chitram.settings.breaker_threshold):
        resp = await dead.client.get("/auth/oauth/github", params={"next": "/upload"})
        assert resp.status_code == 503, resp.text
        assert "location" not in resp.headers  # nobody is sent to the dead host
        assert FRIENDLY in resp.text and "Error" not in resp.text
        assert 'name="password"' in resp.text  # the password form is right there
        assert int(resp.headers["retry-after"]) >= 1
    # the failures went through the provider's breaker: it is open now
    assert dead.chitram.auth.breakers["supabase"].state.value == "open"
    resp = await dead.client.get("/auth/oauth/github")
    assert resp.status_code == 503 and FRIENDLY in resp.text


async def test_a_code_exchange_that_cannot_reach_supabase_is_explained_in_words(
    web: WebEnv, gotrue: FakeGoTrue
) -> None:
    callback = await browser_dance(web, "exchange-down@example.com")
    gotrue.stop()  # connection refused from here on
    try:
        resp = await web.client.get(callback)
        assert resp.status_code == 503
        assert FRIENDLY in resp.text
        assert "ConnectError" not in resp.text and "Supabase did not answer" not in resp.text
        assert web.chitram.auth.breakers["supabase"].failures >= 1
    finally:
        gotrue.start()


async def test_a_replayed_callback_sends_a_signed_in_visitor_home(web: WebEnv) -> None:
    callback = await browser_dance(web, "replayed-home@example.com", "/upload")
    assert (await web.client.get(callback)).status_code == 303
    replay = await web.client.get(callback)
    assert replay.status_code == 303 and replay.headers["location"] == "/"
    assert cookie_of(web).get("a")  # still signed in
    forged = await web.client.get(re.sub(r"state=[^&]+", "state=forged", callback))
    assert forged.status_code == 303 and forged.headers["location"] == "/"


async def test_the_linking_page_needs_a_signed_in_visitor_and_a_configured_provider(
    web: WebEnv,
) -> None:
    anonymous = await web.client.get("/auth/link/github", params={"next": "/upload"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/signin?next=/auth/link/github")
    await web.register()
    unknown = await web.client.get("/auth/link/myspace")
    assert unknown.status_code == 400 and "refresh" not in unknown.headers
    offsite = await web.client.get("/auth/link/github", params={"next": "https://evil.test/"})
    assert offsite.headers["refresh"] == "0; url=/auth/oauth/github?next=/"
