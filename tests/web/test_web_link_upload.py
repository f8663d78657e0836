"""The upload page's "from a link" field in headless Chromium: the server fetches the image."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from originkit import body, serve
from webkit import PASSWORD, Server, picture

pytestmark = pytest.mark.browser

_emails = itertools.count(1)


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def test_an_image_is_uploaded_from_a_link_and_a_bad_link_explains_itself(
    browser: Any, server: Server
) -> None:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.goto("/register")
    page.get_by_label("Email").fill(f"linker{next(_emails)}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="My images")).to_be_visible()

    routes = {
        "/lake.jpg": body(picture(320, 200, hue=200, fmt="JPEG"), "application/octet-stream"),
        "/page.html": body(b"<!doctype html><p>not an image</p>", "image/jpeg"),
    }
    with serve(routes, port=server.link_port) as origin:
        page.get_by_role("navigation").get_by_role("link", name="Upload").click()
        field = page.get_by_label("Or upload from a link")
        field.fill(origin.url("/lake.jpg"))
        page.get_by_role("button", name="Fetch image").click()
        done = page.locator(".upload-item.done")
        expect(done).to_have_count(1)
        expect(done).to_contain_text("320 \u00d7 200")

        field.fill(origin.url("/page.html"))
        page.get_by_role("button", name="Fetch image").click()
        failed = page.locator(".upload-item.failed")
        expect(failed).to_have_count(1)
        expect(failed.get_by_role("alert")).to_contain_text("Not uploaded")

        field.fill("http://169.254.169.254/latest/meta-data/")
        page.get_by_role("button", name="Fetch image").click()
        expect(page.locator(".upload-item.failed")).to_have_count(2)
        expect(page.locator(".upload-item.failed").first.get_by_role("alert")).to_contain_text(
            "not open to fetches"
        )

        done.get_by_role("link", name="View image").click()
        expect(page.get_by_role("heading", name="lake.jpg")).to_be_visible()
    assert origin.hits == ["/lake.jpg", "/page.html"]
    context.close()
