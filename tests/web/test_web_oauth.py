"""Social sign-in over HTTP, without a browser: the API's start and token routes, and the web
UI's buttons and server-side callback, against the fake GoTrue's PKCE flow."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oauthkit import FakeGoTrue, consent, gotrue_settings
from webkit import PASSWORD, WebEnv, csrf_of, open_web, session_payload

from chitram_core.auth import oauth

pytestmark = pytest.mark.anyio

APP = "https://app.example.com/auth/done"
API_START = "/api/v1/auth/oauth/github"
API_TOKEN = "/api/v1/auth/oauth/token"
TOKENISH = re.compile(r"eyJ[\w-]+\.[\w-]+")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def gotrue_server() -> Iterator[FakeGoTrue]:
    fake = FakeGoTrue()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def gotrue(gotrue_server: FakeGoTrue) -> FakeGoTrue:
    gotrue_server.reset()
    gotrue_server.site_url = "http://testserver"
    return gotrue_server


@pytest.fixture
async def web(tmp_path: Path, gotrue: FakeGoTrue) -> AsyncIterator[WebEnv]:
    async with open_web(tmp_path, oauth_redirects=(APP,), **gotrue_settings(gotrue)) as env:
        yield env


def cookie_of(web: WebEnv) -> dict[str, object]:
    return session_payload(web.client.cookies["chitram_session"])


# The API ----------------------------------------------------------------------------------------


async def test_api_start_redirects_to_the_provider_and_hands_the_client_its_verifier(
    web: WebEnv, gotrue: FakeGoTrue
) -> None:
    resp = await web.client.get(API_START, params={"redirect_to": APP})
    assert resp.status_code == 302
    assert resp.headers["cache-control"] == "no-store"
    location = resp.headers["location"]
    assert location.startswith(f"{gotrue.url}/auth/v1/authorize?")
    body = resp.json()
    assert body["url"] == location and body["provider"] == "github"
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge"] == [oauth.challenge_of(body["code_verifier"])]
    assert query["redirect_to"] == [body["redirect_to"]] == [f"{APP}?state={body['state']}"]


async def test_api_client_finishes_with_code_and_verifier(web: WebEnv, gotrue: FakeGoTrue) -> None:
    gotrue.redirect_allow_list = [APP + "**"]
    started = (await web.client.get(API_START, params={"redirect_to": APP})).json()
    back = await consent(started["url"], "api-octo@example.com")
    query = parse_qs(urlsplit(back).query)
    assert back.startswith(APP + "?") and query["state"] == [started["state"]]
    resp = await web.client.post(
        API_TOKEN, json={"code": query["code"][0], "code_verifier": started["code_verifier"]}
    )
    assert resp.status_code == 200, resp.text
    session = resp.json()
    assert set(session) == {"user", "access_token", "token_type", "refresh_token", "expires_in"}
    me = await web.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.json()["email"] == "api-octo@example.com"
    replay = await web.client.post(
        API_TOKEN, json={"code": query["code"][0], "code_verifier": started["code_verifier"]}
    )
    assert replay.status_code == 400
    assert replay.json()["detail"]["code"] == "INVALID_REQUEST"


async def test_api_client_may_keep_its_own_verifier(web: WebEnv) -> None:
    verifier = oauth.new_verifier()
    resp = await web.client.get(
        API_START,
        params={
            "redirect_to": APP,
            "code_challenge": oauth.challenge_of(verifier),
            "code_challenge_method": "S256",
        },
    )
    assert resp.status_code == 302 and "code_verifier" not in resp.json()
    back = await consent(resp.headers["location"], "own-verifier@example.com")
    code = parse_qs(urlsplit(back).query)["code"][0]
    resp = await web.client.post(API_TOKEN, json={"code": code, "code_verifier": verifier})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    "redirect_to",
    [
        "https://evil.example.com/auth/done",
        "http://evil.test/",
        "//evil.test/auth/done",
        "https://app.example.com.evil.test/auth/done",
        "https://app.example.com@evil.test/auth/done",
        "javascript:alert(document.cookie)",
    ],
)
async def test_api_refuses_an_open_redirect(
    web: WebEnv, gotrue: FakeGoTrue, redirect_to: str
) -> None:
    resp = await web.client.get(API_START, params={"redirect_to": redirect_to})
    assert resp.status_code == 400
    assert resp.json()["detail"]["code"] == "INVALID_REQUEST"
    assert "location" not in resp.headers
    assert gotrue.requests == []


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/auth/oauth/gitlab", {"redirect_to": APP}, 404, "NOT_FOUND"),
        (API_START, {}, 422, "VALIDATION_ERROR"),
        (API_START, {"redirect_to": APP, "code_challenge_method": "plain"}, 400, "INVALID_REQUEST"),
        (API_START, {"redirect_to": APP, "code_challenge": "short"}, 400, "INVALID_REQUEST"),
    ],
)
async def test_api_start_errors(
    web: WebEnv, path: str, params: dict[str, str], status: int, code: str
) -> None:
    resp = await web.client.get(path, params=params)
    assert resp.status_code == status
    assert resp.json()["detail"]["code"] == code


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "VALIDATION_ERROR"),
        ({"code": "x"}, 422, "VALIDATION_ERROR"),
        ({"code": 1, "code_verifier": "v" * 43}, 422, "VALIDATION_ERROR"),
        ({"code": "made-up", "code_verifier": "v" * 43}, 400, "INVALID_REQUEST"),
        ({"code": "made-up", "code_verifier": "too-short"}, 400, "INVALID_REQUEST"),
    ],
)
async def test_api_token_errors(
    web: WebEnv, body: dict[str, object], status: int, code: str
) -> None:
    resp = await web.client.post(API_TOKEN, json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"]["code"] == code


async def test_without_oauth_providers_the_routes_are_not_found(tmp_path: Path) -> None:
    async with open_web(tmp_path) as env:
        resp = await env.client.get(API_START, params={"redirect_to": APP})
        assert resp.status_code == 404 and resp.json()["detail"]["code"] == "NOT_FOUND"
        resp = await env.client.post(API_TOKEN, json={"code": "c", "code_verifier": "v" * 43})
        assert resp.status_code == 404
        signin = await env.client.get("/signin")
        assert "Continue with" not in signin.text
        assert (await env.client.get("/auth/oauth/github")).status_code == 404


async def test_supabase_down_is_503_and_local_password_sign_in_still_works(
    web: WebEnv, gotrue: FakeGoTrue
) -> None:
    started = (await web.client.get(API_START, params={"redirect_to": APP})).json()
    back = await consent(started["url"], "down@example.com")
    code = parse_qs(urlsplit(back).query)["code"][0]
    gotrue.mode = "down"
    # while Supabase is down, registration fails over to the local provider
    creds = {"email": "local-only@example.com", "password": PASSWORD}
    assert (await web.client.post("/api/v1/auth/register", json=creds)).status_code == 201
    resp = await web.client.post(
        API_TOKEN, json={"code": code, "code_verifier": started["code_verifier"]}
    )
    assert resp.status_code == 503
    assert resp.json()["detail"]["code"] == "PROVIDER_UNAVAILABLE"
    assert (await web.client.post("/api/v1/auth/login", json=creds)).status_code == 200


# The web UI -------------------------------------------------------------------------------------


async def browser_dance(web: WebEnv, email: str, next_path: str = "/") -> str:
    """Click "Continue with GitHub" and approve at the provider: the callback URL."""
    signin = await web.client.get("/signin", params={"next": next_path})
    link = re.search(r'href="(/auth/oauth/github[^"]*)"', signin.text)
    assert link is not None, signin.text
    start = await web.client.get(link.group(1).replace("&amp;", "&"))
    assert start.status_code == 303
    authorize = start.headers["location"]
    pending = cookie_of(web)["o"]
    assert isinstance(pending, list)
    assert pending[1] not in authorize  # the verifier stays in the cookie
    assert parse_qs(urlsplit(authorize).query)["code_challenge"] == [oauth.challenge_of(pending[1])]
    back = await consent(authorize, email)
    assert back.startswith("http://testserver/auth/callback?")
    return back


async def test_sign_in_page_offers_the_configured_providers(web: WebEnv) -> None:
    page = await web.client.get("/signin")
    assert "Continue with GitHub" in page.text and "Continue with Google" not in page.text


async def test_the_web_callback_signs_in_with_the_same_cookie_as_a_password(
    web: WebEnv,
) -> None:
    callback = await browser_dance(web, "web-octo@example.com", "/upload")
    resp = await web.client.get(callback)
    assert resp.status_code == 303 and resp.headers["location"] == "/upload"
    cookie_header = next(v for k, v in resp.headers.multi_items() if k == "set-cookie")
    assert "HttpOnly" in cookie_header and "SameSite=Lax" in cookie_header
    payload = cookie_of(web)
    assert payload.get("a") and payload.get("r") and "o" not in payload
    assert not TOKENISH.search(resp.headers["location"])
    gallery = await web.client.get("/")
    assert gallery.status_code == 200 and "web-octo@example.com" in gallery.text
    assert not TOKENISH.search(gallery.text)


async def test_a_replayed_callback_is_refused(web: WebEnv) -> None:
    callback = await browser_dance(web, "replay@example.com")
    assert (await web.client.get(callback)).status_code == 303
    await web.client.post(
        "/signout", data={"csrf_token": csrf_of((await web.client.get("/signout")).text)}
    )
    replay = await web.client.get(callback)
    assert replay.status_code == 400
    assert "not valid or was already used" in replay.text
    assert "a" not in cookie_of(web)


async def test_a_forged_state_is_refused_and_burns_the_pending_flow(web: WebEnv) -> None:
    callback = await browser_dance(web, "forged@example.com")
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    resp = await web.client.get(forged)
    assert resp.status_code == 400 and "not valid or was already used" in resp.text
    assert "a" not in cookie_of(web)
    # the genuine callback after a forged one is refused too: the flow is gone
    assert (await web.client.get(callback)).status_code == 400


async def test_a_callback_from_another_browser_is_refused(web: WebEnv, tmp_path: Path) -> None:
    callback = await browser_dance(web, "victim-browser@example.com")
    other = httpx.AsyncClient(transport=web.client._transport, base_url="http://testserver")
    async with other:
        resp = await other.get(callback)
    assert resp.status_code == 400
    assert "chitram_session" not in other.cookies or "a" not in session_payload(
        other.cookies["chitram_session"]
    )


async def test_a_denied_consent_shows_the_sign_in_page(web: WebEnv) -> None:
    signin = await web.client.get("/signin")
    assert signin.status_code == 200
    start = await web.client.get("/auth/oauth/github")
    back = await consent(start.headers["location"], "deny@example.com", decision="deny")
    resp = await web.client.get(back)
    assert resp.status_code == 400 and "cancelled" in resp.text
    assert 'name="password"' in resp.text


async def test_web_start_never_redirects_off_site_afterwards(web: WebEnv) -> None:
    start = await web.client.get("/auth/oauth/github", params={"next": "https://evil.test/"})
    assert start.status_code == 303
    back = await consent(start.headers["location"], "next@example.com")
    resp = await web.client.get(back)
    assert resp.status_code == 303 and resp.headers["location"] == "/"


async def test_web_unknown_provider_is_a_404_page(web: WebEnv) -> None:
    resp = await web.client.get("/auth/oauth/myspace")
    assert resp.status_code == 404 and resp.headers["content-type"].startswith("text/html")


async def test_web_supabase_down_at_the_callback_is_503_with_the_password_form(
    web: WebEnv, gotrue: FakeGoTrue
) -> None:
    callback = await browser_dance(web, "web-down@example.com")
    gotrue.mode = "down"
    resp = await web.client.get(callback)
    assert resp.status_code == 503 and 'name="password"' in resp.text


async def test_a_local_account_with_a_password_is_not_taken_over_but_its_owner_links_it(
    web: WebEnv, gotrue: FakeGoTrue
) -> None:
    gotrue.mode = "down"  # registered while Supabase is down: a local account with a password
    creds = {"email": "owner@example.com", "password": PASSWORD}
    registered = await web.client.post("/api/v1/auth/register", json=creds)
    assert registered.status_code == 201
    owner_id = registered.json()["user"]["id"]
    gotrue.mode = "up"
    callback = await browser_dance(web, "owner@example.com", "/upload")
    resp = await web.client.get(callback)
    assert resp.status_code == 400
    assert "already exists and has a password" in resp.text
    assert "a" not in cookie_of(web)
    # The owner proves the password; the form sends them back through GitHub, which now links.
    next_field = re.search(r'name="next" value="([^"]+)"', resp.text)
    assert next_field is not None
    target = next_field.group(1).replace("&amp;", "&")
    # The form's redirect chain ends on a page of ours (a browser applies the page's
    # form-action 'self' to every redirect of a form post), which moves on by Refresh.
    assert target == "/auth/link/github?next=/upload"
    signed_in = await web.client.post(
        "/signin", data={**creds, "next": target, "csrf_token": csrf_of(resp.text)}
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == target
    onward = await web.client.get(target)
    assert onward.status_code == 200 and "Continue to GitHub" in onward.text
    assert onward.headers["refresh"] == "0; url=/auth/oauth/github?next=/upload"
    start = await web.client.get("/auth/oauth/github?next=/upload")
    assert start.status_code == 303
    back = await consent(start.headers["location"], "owner@example.com")
    linked = await web.client.get(back)
    assert linked.status_code == 303 and linked.headers["location"] == "/upload"
    me = await web.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {cookie_of(web)['a']}"}
    )
    assert me.json()["id"] == owner_id
