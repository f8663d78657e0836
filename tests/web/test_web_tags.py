"""Tags in the web UI, in headless Chromium against a real server (with the local ``palette``
tagger, so uploads get AI tags): the image page shows tags with AI tags marked, the owner adds
and removes tags, and the gallery filters by tag and searches."""

from __future__ import annotations

from typing import Any

import pytest
from test_web_browser import api_token, expect, new_email, register, seed
from webkit import Server

pytestmark = pytest.mark.browser


def wait_for_ai_tags(page: Any, image_id: str) -> None:
    """The tagging job runs after the upload answered: reload until its tags are there."""
    for _ in range(150):
        page.goto(f"/images/{image_id}")
        if page.locator("#tag-list li[data-source='ai']").count():
            return
        page.wait_for_timeout(200)
    raise AssertionError("the image was never tagged")


def test_owner_sees_ai_tags_adds_and_removes_tags_and_filters_the_gallery(
    browser: Any, server: Server
) -> None:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    email = new_email()
    register(page, email)
    first, second, _third = seed(server, api_token(server, email), 3)

    wait_for_ai_tags(page, first)
    ai_chip = page.locator("#tag-list li[data-tag='landscape']")
    expect(ai_chip).to_have_attribute("data-source", "ai")
    expect(ai_chip.locator(".ai-badge")).to_contain_text("AI")

    page.get_by_label("Add a tag").fill("  Sunny Beach ")
    page.get_by_role("button", name="Add tag").click()
    user_chip = page.locator("#tag-list li[data-tag='sunny beach']")
    expect(user_chip).to_have_attribute("data-source", "user")
    expect(user_chip.locator(".ai-badge")).to_have_count(0)

    page.get_by_label("Add a tag").fill("no!")
    page.get_by_role("button", name="Add tag").click()
    expect(page.locator("#tag-add")).to_contain_text("letters, digits, spaces and hyphens")
    expect(page.get_by_label("Add a tag")).to_have_value("no!")

    page.get_by_role("button", name="Remove tag landscape").click()
    expect(page.locator("#tag-list li[data-tag='landscape']")).to_have_count(0)
    expect(page.locator("#tag-list li[data-tag='sunny beach']")).to_have_count(1)

    # the gallery: filter by the tag, then search by filename
    page.goto("/")
    page.get_by_label("Tag").fill("sunny beach")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#gallery li[data-id]")).to_have_count(1)
    expect(page.locator(f"#gallery li[data-id='{first}']")).to_have_count(1)
    expect(page.locator("#active-filters")).to_contain_text("sunny beach")

    page.get_by_role("link", name="Show all").click()
    page.get_by_label("Search").fill("SEED-2")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#gallery li[data-id]")).to_have_count(1)
    expect(page.locator(f"#gallery li[data-id='{second}']")).to_have_count(1)

    page.get_by_label("Search").fill("nothing-like-this")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#no-matches")).to_be_visible()

    # a tag on the image page links to the gallery filtered by it
    page.goto(f"/images/{first}")
    page.locator("#tag-list li[data-tag='sunny beach'] a.tag-name").click()
    expect(page.locator("#gallery li[data-id]")).to_have_count(1)
    context.close()


def test_visitors_see_tags_but_cannot_change_them(browser: Any, server: Server) -> None:
    owner = browser.new_context(base_url=server.base_url)
    owner_page = owner.new_page()
    email = new_email()
    register(owner_page, email)
    (image_id,) = seed(server, api_token(server, email), 1)
    wait_for_ai_tags(owner_page, image_id)
    owner.close()

    visitor = browser.new_context(base_url=server.base_url)
    page = visitor.new_page()
    page.goto(f"/images/{image_id}")
    expect(page.locator("#tag-list li[data-source='ai']").first).to_be_visible()
    expect(page.locator("#tag-add")).to_have_count(0)
    expect(page.locator(".tag-remove")).to_have_count(0)
    visitor.close()


def test_a_cross_site_tag_post_is_refused(browser: Any, server: Server) -> None:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    email = new_email()
    register(page, email)
    (image_id,) = seed(server, api_token(server, email), 1)
    status = page.evaluate(
        """async (url) => (await fetch(url, {method: "POST",
            headers: {"Content-Type": "application/x-www-form-urlencoded"},
            body: "tag=evil&csrf_token=wrong"})).status""",
        f"{server.base_url}/images/{image_id}/tags",
    )
    assert status == 403
    page.goto(f"/images/{image_id}")
    expect(page.locator("#tag-list li[data-tag='evil']")).to_have_count(0)
    context.close()
