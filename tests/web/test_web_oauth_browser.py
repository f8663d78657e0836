"""Social sign-in in headless Chromium: "Continue with GitHub" through the fake GoTrue and its
fake provider page, back signed in, with no token anywhere a script or the address bar sees;
replayed and forged callbacks and an open redirect refused."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from netkit import free_port
from oauthkit import SUPABASE_KEY, FakeGoTrue
from test_web_browser import DESKTOP, expect, shoot
from webkit import PASSWORD, Attacker, Server, session_payload

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
TOKENISH = re.compile(r"eyJ[\w-]+\.[\w-]+")
BAD_CALLBACK = "This sign-in attempt is not valid or was already used. Please start again."
UNAVAILABLE = (
    "GitHub sign-in is unavailable right now. Please try again in a few minutes, or sign in "
    "with your email and password."
)
_emails = itertools.count(1)


def new_email() -> str:
    return f"octocat{next(_emails)}@example.com"


@pytest.fixture(scope="module")
def gotrue() -> Iterator[FakeGoTrue]:
    fake = FakeGoTrue()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def oauth_server(
    tmp_path_factory: pytest.TempPathFactory, gotrue: FakeGoTrue, attacker: Attacker
) -> Iterator[Server]:
    """``chitram serve``'s app with CHITRAM_AUTH_PROVIDERS=supabase,local and GitHub sign-in."""
    data_dir = tmp_path_factory.mktemp("chitram-oauth")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    gotrue.site_url = base_url
    env = {
        **os.environ,
        "CHITRAM_DATA_DIR": str(data_dir),
        "CHITRAM_UPLOAD_RATE_LIMIT": "off",
        "CHITRAM_AUTH_RATE_LIMIT": "off",
        "CHITRAM_AUTH_PROVIDERS": "supabase,local",
        "CHITRAM_SUPABASE_URL": gotrue.url,
        "CHITRAM_SUPABASE_KEY": SUPABASE_KEY,
        "CHITRAM_SUPABASE_JWT_SECRET": gotrue.jwt_secret,
        "CHITRAM_OAUTH_PROVIDERS": "github",
        "CHITRAM_OAUTH_REDIRECTS": f"http://127.0.0.1:{attacker.port}/client/done",
    }
    log = (data_dir / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(HERE),
            "serve_app:app_factory",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "on",
            "--log-level",
            "warning",
            "--no-proxy-headers",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError((data_dir / "server.log").read_text())
            try:
                if httpx.get(base_url + "/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 30 s")
            time.sleep(0.1)
        served = Server(base_url, data_dir)
        yield served
        served.api.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def recorded(page: Any) -> list[str]:
    """Every URL the page requests or navigates to, redirects included."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.on("framenavigated", lambda frame: urls.append(frame.url))
    return urls


def continue_with_github(page: Any, email: str) -> None:
    page.get_by_role("link", name="Continue with GitHub").click()
    expect(page.get_by_role("heading", name="Fake Github")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Authorize").click()


def test_continue_with_github_signs_in_with_nothing_script_readable(
    browser: Any, oauth_server: Server, gotrue: FakeGoTrue, screenshots: Path
) -> None:
    context = browser.new_context(base_url=oauth_server.base_url, viewport=DESKTOP)
    page = context.new_page()
    urls = recorded(page)
    email = new_email()

    page.goto("/signin")
    expect(page.get_by_role("link", name="Continue with GitHub")).to_be_visible()
    expect(page.get_by_role("link", name="Continue with Google")).to_have_count(0)
    shoot(page, screenshots, "signin-social-desktop")
    continue_with_github(page, email)

    expect(page.get_by_role("heading", name="My images")).to_be_visible()
    expect(page.get_by_text(email)).to_be_visible()
    assert page.url == oauth_server.base_url + "/"
    shoot(page, screenshots, "oauth-signed-in-desktop")

    # The session is the HttpOnly cookie; no token in any URL, page, script or storage.
    cookie = next(c for c in context.cookies() if c["name"] == "chitram_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    session = session_payload(cookie["value"])
    access, refresh = session["a"], session["r"]
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert access not in page.content() and refresh not in page.content()
    assert not any(access in url or refresh in url or TOKENISH.search(url) for url in urls)
    assert any("/auth/v1/authorize?" in url for url in urls)  # it went through GoTrue
    callback = next(url for url in urls if "/auth/callback?" in url)
    assert "code=" in callback and "state=" in callback

    # The user behind the cookie is the Supabase identity's local user.
    me = oauth_server.api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200 and me.json()["email"] == email

    # Replaying the callback in the same, signed-in browser just goes home.
    response = page.goto(callback)
    assert response is not None and response.status == 200
    assert page.url == oauth_server.base_url + "/"
    expect(page.get_by_role("heading", name="My images")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)

    # Replaying it in another browser (a leaked URL) signs nobody in.
    thief = browser.new_context(base_url=oauth_server.base_url, viewport=DESKTOP)
    stolen = thief.new_page()
    response = stolen.goto(callback)
    assert response is not None and response.status == 400
    expect(stolen.get_by_role("alert")).to_have_text(BAD_CALLBACK)
    stolen.goto("/")
    expect(stolen.get_by_role("heading", name="Sign in")).to_be_visible()
    thief.close()
    context.close()


def test_a_forged_state_is_refused(browser: Any, oauth_server: Server, screenshots: Path) -> None:
    context = browser.new_context(base_url=oauth_server.base_url, viewport=DESKTOP)
    page = context.new_page()
    page.goto("/signin")
    page.get_by_role("link", name="Continue with GitHub").click()
    expect(page.get_by_role("heading", name="Fake Github")).to_be_visible()
    # An attacker's link: their own code, a state of their choosing.
    response = page.goto(oauth_server.base_url + "/auth/callback?state=forged&code=attackers")
    assert response is not None and response.status == 400
    expect(page.get_by_role("alert")).to_have_text(BAD_CALLBACK)
    expect(page.get_by_label("Password")).to_be_visible()  # password sign-in is right there
    shoot(page, screenshots, "oauth-refused-desktop")
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    context.close()


def test_an_open_redirect_through_redirect_to_is_refused(
    browser: Any, oauth_server: Server, attacker: Attacker
) -> None:
    attacker.pages["/steal"] = "<h1>stolen</h1>"
    context = browser.new_context(base_url=oauth_server.base_url, viewport=DESKTOP)
    page = context.new_page()
    urls = recorded(page)
    evil = attacker.url("/steal")
    response = page.goto(f"/api/v1/auth/oauth/github?redirect_to={quote(evil, safe='')}")
    assert response is not None and response.status == 400
    assert response.json()["detail"]["code"] == "INVALID_REQUEST"
    assert not any(url.startswith(attacker.url("/")) for url in urls)
    assert not any("/auth/v1/authorize" in url for url in urls)

    # An allow-listed API client's redirect works, and the browser ends up there with a code.
    allowed = f"http://127.0.0.1:{attacker.port}/client/done"
    page.goto(f"/api/v1/auth/oauth/github?redirect_to={quote(allowed, safe='')}")
    expect(page.get_by_role("heading", name="Fake Github")).to_be_visible()
    page.get_by_label("Email").fill(new_email())
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(re.escape(allowed) + r"\?.*code="))
    assert "state=" in page.url

    # The web UI's own "next" never leaves the site either.
    page.goto(f"/signin?next={quote(evil, safe='')}")
    continue_with_github(page, new_email())
    expect(page.get_by_role("heading", name="My images")).to_be_visible()
    assert page.url == oauth_server.base_url + "/"
    context.close()


def test_linking_github_to_a_password_account(
    browser: Any, oauth_server: Server, gotrue: FakeGoTrue
) -> None:
    email = new_email()
    gotrue.mode = "down"  # registered while Supabase is down: a local account with a password
    try:
        resp = oauth_server.api.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
    finally:
        gotrue.mode = "up"
    assert resp.status_code == 201, resp.text
    owner_id = resp.json()["user"]["id"]

    context = browser.new_context(base_url=oauth_server.base_url, viewport=DESKTOP)
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text))
    page.goto("/signin?next=/upload")
    continue_with_github(page, email)
    expect(page.get_by_role("alert")).to_contain_text("already exists and has a password")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Signed in by the password, the browser goes on through GitHub (no form-action refusal).
    expect(page.get_by_role("heading", name="Fake Github")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(oauth_server.base_url + "/upload")
    assert not [m for m in blocked if "Content Security Policy" in m], blocked

    cookie = next(c for c in context.cookies() if c["name"] == "chitram_session")
    access = session_payload(cookie["value"])["a"]
    me = oauth_server.api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {access}"})
    assert me.json()["id"] == owner_id  # the GitHub identity is linked to the password account
    context.close()

    # From now on "Continue with GitHub" alone signs in to that same account.
    fresh = browser.new_context(base_url=oauth_server.base_url, viewport=DESKTOP)
    page = fresh.new_page()
    page.goto("/signin")
    continue_with_github(page, email)
    expect(page.get_by_role("heading", name="My images")).to_be_visible()
    fresh.close()


def test_password_sign_in_still_works_while_supabase_is_down(
    browser: Any, oauth_server: Server, gotrue: FakeGoTrue
) -> None:
    context = browser.new_context(base_url=oauth_server.base_url, viewport=DESKTOP)
    page = context.new_page()
    page.goto("/signin")
    page.get_by_role("link", name="Continue with GitHub").click()
    expect(page.get_by_role("heading", name="Fake Github")).to_be_visible()
    gotrue.mode = "down"  # Supabase goes down while the person is at GitHub
    try:
        page.get_by_label("Email").fill(new_email())
        with page.expect_response(re.compile(r"/auth/callback\?")) as answer:
            page.get_by_role("button", name="Authorize").click()
        assert answer.value.status == 503
        expect(page.get_by_role("alert")).to_contain_text("unavailable")
        email = new_email()
        resp = oauth_server.api.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert resp.status_code == 201, resp.text  # failed over to the local provider
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="My images")).to_be_visible()
    finally:
        gotrue.mode = "up"
        context.close()


def test_continue_with_github_while_supabase_is_dead_stays_and_explains(
    browser: Any, oauth_server: Server, gotrue: FakeGoTrue
) -> None:
    """Last in this module: it leaves the server's Supabase circuit open."""
    context = browser.new_context(base_url=oauth_server.base_url, viewport=DESKTOP)
    page = context.new_page()
    # first a flow that reaches GitHub, whose code exchange then finds Supabase dead
    page.goto("/signin")
    page.get_by_role("link", name="Continue with GitHub").click()
    expect(page.get_by_role("heading", name="Fake Github")).to_be_visible()
    provider_page = page.url
    flow = parse_qs(urlsplit(provider_page).query)["flow"][0]
    approved = httpx.post(
        provider_page.split("?")[0] + "?" + urlsplit(provider_page).query,
        data={"flow": flow, "email": new_email(), "decision": "allow"},
    )
    assert approved.status_code == 302
    callback = approved.headers["location"]
    urls = recorded(page)
    gotrue.stop()  # connection refused from now on
    try:
        response = page.goto(callback)
        assert response is not None and response.status == 503
        expect(page.get_by_role("alert")).to_have_text(UNAVAILABLE)

        for _ in range(3):
            page.goto("/signin")
            with page.expect_response(re.compile(r"/auth/oauth/github")) as answer:
                page.get_by_role("link", name="Continue with GitHub").click()
            assert answer.value.status == 503
            expect(page.get_by_role("alert")).to_have_text(UNAVAILABLE)
            assert page.url.startswith(oauth_server.base_url + "/auth/oauth/github")
            expect(page.get_by_label("Password")).to_be_visible()
        assert not any(url.startswith(gotrue.url) for url in urls)  # never sent to the dead host
    finally:
        gotrue.start()
    # Supabase is back, but the circuit the failures opened holds: still no trip to it.
    before = len(gotrue.requests)
    page.goto("/signin")
    page.get_by_role("link", name="Continue with GitHub").click()
    expect(page.get_by_role("alert")).to_have_text(UNAVAILABLE)
    assert len(gotrue.requests) == before
    context.close()
