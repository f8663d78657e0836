"""The web UI over HTTP, without a browser: cookies, CSRF, revocation, headers, mounting."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from webkit import PASSWORD, WebEnv, csrf_of, open_web, picture, session_payload

from chitram_core import Chitram
from chitram_falcon import create_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebEnv]:
    async with open_web(tmp_path) as env:
        yield env


def session_cookie(resp: httpx.Response) -> str:
    header = next(v for k, v in resp.headers.multi_items() if k == "set-cookie")
    return header


async def test_pages_carry_a_strict_content_security_policy(web: WebEnv) -> None:
    resp = await web.client.get("/signin")
    assert resp.status_code == 200
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-store"
    assert "<script>" not in resp.text and " on" + "click=" not in resp.text


async def test_session_cookie_is_http_only_and_same_site_lax(web: WebEnv) -> None:
    resp = await web.client.get("/signin")
    cookie = session_cookie(resp)
    assert cookie.startswith("chitram_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie


async def test_cookie_is_secure_with_host_prefix_when_configured(tmp_path: Path) -> None:
    async with open_web(tmp_path, cookie_secure=True) as web:
        cookie = session_cookie(await web.client.get("/signin"))
    assert cookie.startswith("__Host-chitram_session=")
    assert "Secure" in cookie


async def test_cookie_is_secure_when_served_over_https(tmp_path: Path) -> None:
    async with open_web(tmp_path, base_url="https://testserver") as web:
        cookie = session_cookie(await web.client.get("/signin"))
    assert "Secure" in cookie


async def test_register_signs_in_and_the_gallery_greets_the_user(web: WebEnv) -> None:
    email = await web.register()
    resp = await web.client.get("/")
    assert resp.status_code == 200
    assert email in resp.text and "You have no images yet" in resp.text


async def test_signed_out_gallery_redirects_to_sign_in(web: WebEnv) -> None:
    resp = await web.client.get("/")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/signin?next=/"


async def test_form_post_without_csrf_token_is_refused(web: WebEnv) -> None:
    await web.client.get("/signin")
    resp = await web.client.post("/signin", data={"email": "a@example.com", "password": "x"})
    assert resp.status_code == 403
    assert "security token" in resp.text


async def test_cross_site_post_is_refused_and_sets_no_cookie(web: WebEnv) -> None:
    await web.register()
    token = await web.form("/")
    resp = await web.client.post(
        "/signout", data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert resp.status_code == 403
    assert "set-cookie" not in resp.headers
    assert (await web.client.get("/")).status_code == 200  # still signed in


async def test_post_from_another_origin_is_refused(web: WebEnv) -> None:
    await web.register()
    token = await web.form("/")
    resp = await web.client.post(
        "/signout", data={"csrf_token": token}, headers={"Origin": "http://evil.test"}
    )
    assert resp.status_code == 403
    assert (await web.client.get("/")).status_code == 200


async def test_same_origin_post_with_token_is_accepted(web: WebEnv) -> None:
    await web.register()
    token = await web.form("/")
    resp = await web.client.post(
        "/signout",
        data={"csrf_token": token},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == "/signin?notice=signed-out"


async def test_sign_out_revokes_the_session_server_side(web: WebEnv) -> None:
    await web.register()
    stolen = session_payload(web.client.cookies["chitram_session"])
    assert (
        await web.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {stolen['a']}"})
    ).status_code == 200
    token = await web.form("/")
    assert (await web.client.post("/signout", data={"csrf_token": token})).status_code == 303
    me = await web.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {stolen['a']}"})
    assert me.status_code == 401
    refresh = await web.client.post("/api/v1/auth/refresh", json={"refresh_token": stolen["r"]})
    assert refresh.status_code == 401
    assert (await web.client.get("/")).status_code == 303


async def test_a_tampered_cookie_is_treated_as_no_session(web: WebEnv) -> None:
    await web.register()
    value = web.client.cookies["chitram_session"]
    web.client.cookies.clear()
    web.client.cookies.set("chitram_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert (await web.client.get("/")).status_code == 303


async def test_sign_in_errors_are_shown_in_words(web: WebEnv) -> None:
    email = await web.register()
    await web.client.post("/signout", data={"csrf_token": await web.form("/")})
    token = await web.form("/signin")
    resp = await web.client.post(
        "/signin", data={"email": email, "password": "wrong password", "csrf_token": token}
    )
    assert resp.status_code == 401
    assert 'role="alert"' in resp.text and email in resp.text


async def test_sign_in_rotates_the_csrf_token(web: WebEnv) -> None:
    email = await web.register()
    await web.client.post("/signout", data={"csrf_token": await web.form("/")})
    before = await web.form("/signin")
    resp = await web.client.post(
        "/signin", data={"email": email, "password": PASSWORD, "csrf_token": before, "next": "/"}
    )
    assert resp.status_code == 303
    assert await web.form("/") != before


@pytest.mark.parametrize("target", ["//evil.test/", "https://evil.test/", "/\\evil.test"])
async def test_sign_in_never_redirects_off_site(web: WebEnv, target: str) -> None:
    email = await web.register()
    await web.client.post("/signout", data={"csrf_token": await web.form("/")})
    token = await web.form("/signin")
    resp = await web.client.post(
        "/signin", data={"email": email, "password": PASSWORD, "csrf_token": token, "next": target}
    )
    assert resp.headers["location"] == "/"


async def test_password_reset_answers_the_same_for_unknown_emails(web: WebEnv) -> None:
    token = await web.form("/password-reset")
    resp = await web.client.post(
        "/password-reset", data={"email": "nobody@example.com", "csrf_token": token}
    )
    assert resp.status_code == 200
    assert "If an account exists for this email" in resp.text


async def test_ui_upload_needs_the_csrf_header(web: WebEnv) -> None:
    await web.register()
    files = {"file": ("a.png", picture(40, 30), "image/png")}
    refused = await web.client.post("/ui/api/images/upload", files=files)
    assert refused.status_code == 403
    assert refused.json()["detail"]["code"] == "FORBIDDEN"
    token = await web.form("/upload")
    resp = await web.client.post(
        "/ui/api/images/upload", files=files, headers={"X-CSRF-Token": token}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["width"] == 40


async def test_ui_upload_reports_the_api_error(web: WebEnv) -> None:
    await web.register()
    token = await web.form("/upload")
    resp = await web.client.post(
        "/ui/api/images/upload",
        files={"file": ("notes.png", b"this is not an image", "image/png")},
        headers={"X-CSRF-Token": token},
    )
    assert resp.status_code == 400
    assert resp.json()["detail"]["code"] == "INVALID_FILE_FORMAT"


async def test_ui_list_pages_by_cursor_without_gaps_or_duplicates(web: WebEnv) -> None:
    await web.register()
    token = await web.form("/upload")
    uploaded = []
    for n in range(5):
        resp = await web.client.post(
            "/ui/api/images/upload",
            files={"file": (f"{n}.png", picture(20 + n, 20), "image/png")},
            headers={"X-CSRF-Token": token},
        )
        uploaded.append(resp.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await web.client.get("/ui/api/images", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(uploaded))


async def test_image_page_is_public_and_only_the_owner_may_delete(web: WebEnv) -> None:
    await web.register()
    token = await web.form("/upload")
    image = (
        await web.client.post(
            "/ui/api/images/upload",
            files={"file": ("<img src=x onerror=alert(1)>.png", picture(50, 40), "image/png")},
            headers={"X-CSRF-Token": token},
        )
    ).json()
    owner_view = await web.client.get(f"/images/{image['id']}")
    assert "Delete image" in owner_view.text
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in owner_view.text
    assert "<img src=x" not in owner_view.text
    web.client.cookies.clear()
    public = await web.client.get(f"/images/{image['id']}")
    assert public.status_code == 200
    assert "50 \u00d7 40 pixels" in public.text and "Delete image" not in public.text
    assert (await web.client.get(f"/images/{image['id']}/delete")).status_code == 303


async def test_unknown_image_page_is_an_html_404(web: WebEnv) -> None:
    resp = await web.client.get("/images/not-an-id")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("text/html")


async def test_delete_by_form_post(web: WebEnv) -> None:
    await web.register()
    token = await web.form("/upload")
    image = (
        await web.client.post(
            "/ui/api/images/upload",
            files={"file": ("a.png", picture(30, 30), "image/png")},
            headers={"X-CSRF-Token": token},
        )
    ).json()
    resp = await web.client.post(f"/images/{image['id']}/delete", data={"csrf_token": token})
    assert resp.status_code == 303 and resp.headers["location"] == "/?notice=deleted"
    assert (await web.client.get(f"/api/v1/images/{image['id']}")).status_code == 404


async def test_static_files_are_cached_for_good_under_their_hash(web: WebEnv) -> None:
    page = await web.client.get("/signin")
    href = page.text.split('rel="stylesheet" href="')[1].split('"')[0]
    resp = await web.client.get(href)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/css")
    assert "immutable" in resp.headers["cache-control"]


async def test_expired_access_token_is_renewed_from_the_refresh_token(tmp_path: Path) -> None:
    async with open_web(tmp_path, access_token_ttl=1) as web:
        await web.register()
        first = session_payload(web.client.cookies["chitram_session"])
        import anyio

        await anyio.sleep(2.1)
        resp = await web.client.get("/")
        assert resp.status_code == 200
        renewed = session_payload(web.client.cookies["chitram_session"])
        assert renewed["a"] != first["a"] and renewed["c"] == first["c"]


async def test_web_ui_off_serves_no_pages(tmp_path: Path) -> None:
    async with open_web(tmp_path, web_ui=False) as web:
        assert (await web.client.get("/signin")).status_code == 404


async def test_a_host_mounts_the_ui_under_a_prefix(tmp_path: Path) -> None:
    from webkit import make_settings

    from chitram_falcon.web import mount

    async with Chitram(make_settings(tmp_path, web_ui=False), background=False) as chitram:
        app = create_app(chitram, extensions=[lambda a: mount(a, prefix="/gallery")])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = await client.get("/gallery/signin")
            assert page.status_code == 200
            assert 'action="/gallery/signin"' in page.text
            assert csrf_of(page.text)
            assert (await client.get("/gallery")).headers["location"] == (
                "/gallery/signin?next=/gallery/"
            )
            # The page's own CSS and script links resolve under the prefix too.
            for link in re.findall(r'(?:href|src)="(/[^"]*/ui/static/[^"]+)"', page.text):
                assert link.startswith("/gallery/ui/static/")
                assert (await client.get(link)).status_code == 200
            assert "/gallery/ui/static/" in page.text
