"""The web UI's pages in headless Chromium: the HTML 404 page, the image page's sized image
(a variant from its srcset, not the original) with a link to the original, the direct link
opened in Chromium's own image viewer without a content-security-policy violation, and tag
chips that lead a visitor to the tag's gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from imagekit import photo_png
from phonekit import count_received, phone_context
from test_web_browser import (
    DESKTOP,
    api_token,
    expect,
    new_email,
    register,
    registered,
    seed,
    shoot,
)
from webkit import Server

pytestmark = pytest.mark.browser


def test_an_unknown_address_shows_the_not_found_page(
    browser: Any, server: Server, screenshots: Path
) -> None:
    context = browser.new_context(base_url=server.base_url, viewport=DESKTOP)
    page = context.new_page()
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()  # the UI's navigation
    shoot(page, screenshots, "not-found-desktop")
    response = page.goto("/api/v1/no-such-route")
    assert response is not None and response.status == 404
    assert response.json()["detail"]["code"] == "NOT_FOUND"  # the API keeps its JSON
    context.close()


def test_the_image_page_loads_a_variant_and_links_the_original(
    browser: Any, server: Server
) -> None:
    email = registered(browser, server)
    (image_id,) = seed(server, api_token(server, email), 1)
    context = browser.new_context(base_url=server.base_url, viewport=DESKTOP)
    page = context.new_page()
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(f"/images/{image_id}")
    image = page.locator(".viewer img")
    expect(image).to_have_js_property("complete", True)
    current = page.evaluate("document.querySelector('.viewer img').currentSrc")
    assert f"/api/v1/images/{image_id}/variants/w" in current
    assert not any(url.endswith(f"/api/v1/images/{image_id}/file") for url in fetched)
    original = page.get_by_role("link", name="Open the original")
    expect(original).to_have_attribute("href", f"/api/v1/images/{image_id}/file")

    # The direct link, in Chromium's own image viewer: its inline styles are not refused.
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    original.click()
    page.wait_for_url(f"**/api/v1/images/{image_id}/file")
    assert page.evaluate("document.images.length") == 1
    page.wait_for_timeout(200)  # let the viewer apply its styles (not a timing assertion)
    assert not [v for v in violations if "Content Security Policy" in v], violations
    context.close()


def test_the_image_page_of_a_large_png_photo_costs_a_phone_little(
    browser: Any, server: Server
) -> None:
    email = registered(browser, server)
    data = photo_png()  # 1600 x 1200, about 2.3 MB
    assert len(data) > 2_000_000
    uploaded = server.api.post(
        "/api/v1/images/upload",
        files={"file": ("photo.png", data, "image/png")},
        headers={"Authorization": f"Bearer {api_token(server, email)}"},
    )
    assert uploaded.status_code == 201, uploaded.text
    image_id = uploaded.json()["id"]
    # Render the variants first: this measures what a visitor's phone receives, not a render.
    for spec in ("w320", "w640", "w1280", "w1920"):
        for accept in ("image/avif,image/webp,*/*", "image/webp,*/*", "*/*"):
            warm = server.api.get(
                f"/api/v1/images/{image_id}/variants/{spec}", headers={"Accept": accept}
            )
            assert warm.status_code == 200, warm.text

    phone = phone_context(browser, server.base_url)
    page = phone.new_page()
    received = count_received(page)
    page.goto(f"/images/{image_id}", wait_until="networkidle")
    expect(page.locator(".viewer img")).to_have_js_property("complete", True)
    page.wait_for_load_state("networkidle")
    current = page.evaluate("document.querySelector('.viewer img').currentSrc")
    # 390 CSS pixels at 3 device pixels each: the 1280-pixel variant, not the original.
    assert current.endswith(f"/api/v1/images/{image_id}/variants/w1280"), current
    assert not any(url.endswith(f"/api/v1/images/{image_id}/file") for url in received)
    total = sum(received.values())
    assert total <= 200_000, sorted(received.items(), key=lambda item: -item[1])
    phone.close()


def test_a_visitors_tag_chip_leads_to_the_tags_gallery(browser: Any, server: Server) -> None:
    owner = browser.new_context(base_url=server.base_url)
    email = new_email()
    register(owner.new_page(), email)
    token = api_token(server, email)
    (image_id,) = seed(server, token, 1)
    added = server.api.post(
        f"/api/v1/images/{image_id}/tags",
        json={"tag": "harbour"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert added.status_code == 201, added.text

    visitor = browser.new_context(base_url=server.base_url, viewport=DESKTOP)
    page = visitor.new_page()
    page.goto(f"/images/{image_id}")
    page.get_by_role("link", name="harbour", exact=True).click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.url.endswith("/signin?next=/%3Ftag%3Dharbour")
    visitor.close()

    # the owner, following the same chip, sees the gallery filtered by it
    page = owner.new_page()
    page.goto(f"/images/{image_id}")
    page.get_by_role("link", name="harbour", exact=True).click()
    expect(page.locator(f"#gallery li[data-id='{image_id}']")).to_have_count(1)
    assert page.url.endswith("/?tag=harbour")
    owner.close()
