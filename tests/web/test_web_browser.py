"""The web UI in headless Chromium against a real server: what a person does, end to end."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path
from typing import Any

import httpx
import pytest
from phonekit import PHONE
from PIL import Image as PILImage
from webkit import PAGE_SIZE, PASSWORD, Attacker, Server, picture, session_payload

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
BAD_FILE_MESSAGE = (
    "Unsupported file format: JPEG, PNG, GIF, WebP and AVIF are accepted (HEIC and JPEG XL "
    "with the chitram[heif] and chitram[jxl] extras)"
)
_emails = itertools.count(1)


def new_email() -> str:
    return f"browser{next(_emails)}@example.com"


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def register(page: Any, email: str) -> None:
    page.goto("/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="My images")).to_be_visible()


def registered(browser: Any, server: Server) -> str:
    """The email of a new user registered through the UI, in a browser context of its own."""
    context = browser.new_context(base_url=server.base_url)
    email = new_email()
    register(context.new_page(), email)
    context.close()
    return email


def sign_in(page: Any, email: str) -> None:
    page.goto("/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My images")).to_be_visible()


def api_token(server: Server, email: str) -> str:
    resp = server.api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


def seed(server: Server, token: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        resp = server.api.post(
            "/api/v1/images/upload",
            files={"file": (f"seed-{n + 1}.jpg", picture(800, 600, hue=n * 37, fmt="JPEG"))},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids


def api_listing(server: Server, token: str) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = server.api.get(
            "/api/v1/images", params=params, headers={"Authorization": f"Bearer {token}"}
        ).json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def drop_files(page: Any, files: list[tuple[str, bytes, str]]) -> None:
    """Drag and drop, as the browser delivers it: a DataTransfer of File objects on the zone."""
    payload = [
        {"name": name, "type": mime, "b64": base64.b64encode(data).decode()}
        for name, data, mime in files
    ]
    transfer = page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: f.type }));
            }
            return dt;
        }""",
        payload,
    )
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def gallery_ids(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#gallery li[data-id]", "(items) => items.map((li) => li.dataset.id)"
    )
    return ids


def images_loaded(page: Any) -> None:
    """Wait for every <img> to finish (polled with evaluate: the pages' CSP forbids the eval
    that Playwright's wait_for_function uses)."""
    for _ in range(100):
        if page.evaluate("[...document.images].every((img) => img.complete)"):
            return
        page.wait_for_timeout(50)
    raise AssertionError("images did not load")


def shoot(page: Any, folder: Path, name: str) -> None:
    """A viewport screenshot, reduced to a 256-colour palette to keep the committed PNG small."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    with PILImage.open(path) as shot:
        small = shot.convert("RGB").quantize(256, method=PILImage.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def test_register_sign_in_upload_scroll_open_copy_delete_sign_out(
    browser: Any, server: Server
) -> None:
    context = browser.new_context(
        base_url=server.base_url,
        viewport=DESKTOP,
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = context.new_page()
    email = new_email()

    register(page, email)
    expect(page.get_by_text("You have no images yet")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    sign_in(page, email)

    token = api_token(server, email)
    seeded = seed(server, token, 5)

    # Upload: three files dropped at once, one of them not an image.
    page.get_by_role("navigation").get_by_role("link", name="Upload").click()
    expect(page.get_by_role("heading", name="Upload images")).to_be_visible()
    drop_files(
        page,
        [
            ("harbour.png", picture(640, 480, hue=10), "image/png"),
            ("notes.png", b"these are my notes, not a picture", "image/png"),
            ("meadow.jpg", picture(1024, 768, hue=90, fmt="JPEG"), "image/jpeg"),
        ],
    )
    expect(page.locator(".upload-item")).to_have_count(3)
    expect(page.locator(".upload-item.done")).to_have_count(2)
    failed = page.locator(".upload-item.failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("notes.png")
    expect(failed.get_by_role("alert")).to_have_text(f"Not uploaded: {BAD_FILE_MESSAGE}")
    assert page.eval_on_selector_all(
        ".upload-item.done progress", "(bars) => bars.map((bar) => bar.value)"
    ) == [100, 100]

    # Gallery: the first page comes from the server; scrolling fetches the rest by cursor.
    listing = api_listing(server, token)
    assert len(listing) == 7 and set(seeded) <= set(listing)
    jar = {c["name"]: c["value"] for c in context.cookies()}
    with httpx.Client(base_url=server.base_url, cookies=jar) as same_session:
        first_html = same_session.get("/").text
    assert first_html.count('class="card"') == PAGE_SIZE
    page.get_by_role("navigation").get_by_role("link", name="My images").click()
    expect(page.locator("#gallery li")).not_to_have_count(0)
    for _ in range(20):
        if page.locator("#more").count() == 0:
            break
        page.mouse.wheel(0, 2000)
        page.wait_for_timeout(100)
    expect(page.locator("#more")).to_have_count(0)
    ids = gallery_ids(page)
    assert ids == listing  # newest first, no duplicates, no gaps

    # Image page: open one of the uploads, copy its link.
    page.locator("#gallery").get_by_role("link", name="meadow.jpg", exact=True).click()
    expect(page.get_by_role("heading", name="meadow.jpg")).to_be_visible()
    expect(page.locator("#dimensions")).to_have_text("1024 \u00d7 768 pixels")
    expect(page.locator("#size")).to_contain_text("KB")
    expect(page.locator("#uploaded")).not_to_be_empty()
    expect(page.get_by_role("img", name="meadow.jpg (1024 \u00d7 768 pixels)")).to_be_visible()
    image_url = page.url
    page.get_by_role("button", name="Copy link").first.click()
    expect(page.locator("#copy-status")).to_have_text("Link copied.")
    assert page.evaluate("navigator.clipboard.readText()") == image_url

    # Delete, after confirming in the dialog.
    image_id = image_url.rsplit("/", 1)[1]
    page.get_by_role("link", name="Delete image…").click()
    dialog = page.get_by_role("dialog", name="Delete this image?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    page.get_by_role("link", name="Delete image…").click()
    dialog.get_by_role("button", name="Delete permanently").click()
    expect(page.get_by_text("The image was deleted.")).to_be_visible()
    assert image_id not in gallery_ids(page)
    assert server.api.get(f"/api/v1/images/{image_id}").status_code == 404

    # Sign out: the session is revoked on the server, not just forgotten by the browser.
    cookie = next(c for c in context.cookies() if c["name"] == "chitram_session")
    access = session_payload(cookie["value"])["a"]
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    me = server.api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 401
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    context.close()


def test_session_cookie_is_invisible_to_scripts(browser: Any, server: Server) -> None:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    register(page, new_email())
    assert "chitram_session" not in page.evaluate("document.cookie")
    (cookie,) = [c for c in context.cookies() if c["name"] == "chitram_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    context.close()


def test_cross_site_form_posts_are_refused(
    browser: Any, server: Server, attacker: Attacker
) -> None:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    email = new_email()
    register(page, email)
    (image_id,) = seed(server, api_token(server, email), 1)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    for path, action in (("/delete", f"/images/{image_id}/delete"), ("/signout", "/signout")):
        attacker.pages[path] = (
            "<!doctype html><title>Win a prize</title>"
            f'<form method="post" action="{server.base_url}{action}">'
            f'<input type="hidden" name="csrf_token" value="{csrf}">'
            '<button type="submit">Claim your prize</button></form>'
        )
        page.goto(attacker.url(path))
        with page.expect_response(server.base_url + action) as answer:
            page.get_by_role("button", name="Claim your prize").click()
        assert answer.value.status == 403
        expect(page.get_by_role("heading", name="Request refused")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text("another site")
    assert server.api.get(f"/api/v1/images/{image_id}").status_code == 200
    page.goto(f"/images/{image_id}")
    expect(page.get_by_text(email)).to_be_visible()  # still signed in
    expect(page.get_by_role("link", name="Delete image…")).to_be_visible()
    context.close()


def test_public_image_page_works_signed_out(browser: Any, server: Server) -> None:
    email = registered(browser, server)
    (image_id,) = seed(server, api_token(server, email), 1)
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.goto(f"/images/{image_id}")
    expect(page.get_by_role("heading", name="seed-1.jpg")).to_be_visible()
    expect(page.get_by_role("img", name="seed-1.jpg (800 \u00d7 600 pixels)")).to_be_visible()
    # a sized variant from the srcset (its naturalWidth is density-corrected to the layout)
    current = page.evaluate("document.querySelector('.viewer img').currentSrc")
    assert f"/api/v1/images/{image_id}/variants/w" in current
    assert page.evaluate("document.querySelector('.viewer img').naturalWidth") > 0
    expect(page.get_by_role("link", name="Delete image…")).to_have_count(0)
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    context.close()


def test_keyboard_reaches_the_skip_link_with_a_visible_focus_ring(
    browser: Any, server: Server
) -> None:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.goto("/password-reset")
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "(() => { const el = document.activeElement; const s = getComputedStyle(el);"
        " return [el.textContent, s.outlineStyle, s.outlineWidth]; })()"
    )
    assert focused[0] == "Skip to content" and focused[1] != "none" and focused[2] != "0px"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "email"
    context.close()


ACCESSIBILITY_CHECK = """() => {
  const problems = [];
  for (const img of document.querySelectorAll('img')) {
    if (!img.hasAttribute('alt')) problems.push('img without alt: ' + img.src);
  }
  for (const input of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!(input.labels && input.labels.length) && !input.getAttribute('aria-label'))
      problems.push('unlabelled field: ' + (input.id || input.name));
  }
  for (const button of document.querySelectorAll('button, a[href]')) {
    if (!button.textContent.trim() && !button.getAttribute('aria-label')
        && !button.querySelector('img[alt]:not([alt=""])'))
      problems.push('nameless control: ' + button.outerHTML.slice(0, 80));
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    problems.push('page scrolls sideways: ' + document.documentElement.scrollWidth);
  return problems;
}"""


def test_every_page_at_desktop_and_phone_width(
    browser: Any, server: Server, screenshots: Path
) -> None:
    """Screenshots for docs/ui.md, and on each page: alt text, labels, no sideways scrolling."""
    email = registered(browser, server)
    token = api_token(server, email)
    image_id = seed(server, token, 7)[-1]

    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        visitor = browser.new_context(base_url=server.base_url, viewport=viewport)
        page = visitor.new_page()

        def check(name: str, page: Any = page, label: str = label) -> None:
            assert page.evaluate(ACCESSIBILITY_CHECK) == [], name
            shoot(page, screenshots, f"{name}-{label}")

        page.goto(f"/images/{image_id}")
        images_loaded(page)
        check("image-public")
        page.goto("/register")
        check("register")
        page.goto("/password-reset")
        page.get_by_label("Email").fill(email)
        page.get_by_role("button", name="Send reset link").click()
        expect(page.get_by_text("If an account exists")).to_be_visible()
        check("password-reset")
        page.goto("/signin")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill("not my password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_be_visible()
        check("signin-error")
        sign_in(page, email)
        images_loaded(page)
        check("gallery")
        page.goto("/upload")
        page.locator("#files").set_input_files(
            [
                {
                    "name": "lighthouse.png",
                    "mimeType": "image/png",
                    "buffer": picture(480, 360, hue=150),
                },
                {
                    "name": "holiday.gif",
                    "mimeType": "image/gif",
                    "buffer": b"GIF89a this is truncated nonsense",
                },
            ]
        )
        expect(page.locator(".upload-item.done, .upload-item.failed")).to_have_count(2)
        check("upload")
        page.goto(f"/images/{image_id}")
        images_loaded(page)
        check("image")
        page.get_by_role("link", name="Delete image…").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        check("delete-confirm")
        page.goto("/signout")
        check("signout")
        visitor.close()
