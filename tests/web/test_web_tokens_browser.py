"""API tokens in the web UI, in headless Chromium: create one (shown once), download its ShareX
uploader, replay the uploader's request with httpx, revoke it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_browser import expect, new_email, register
from webkit import Server, picture

pytestmark = pytest.mark.browser


def test_create_a_token_download_its_sharex_file_replay_it_and_revoke(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    context = browser.new_context(base_url=server.base_url, accept_downloads=True)
    page = context.new_page()
    register(page, new_email())
    expect(page.locator("header .usage")).to_contain_text("0 images")
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    page.get_by_label("Name").fill("ShareX laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("chitram_pat_")
    expect(page.get_by_role("cell", name="ShareX laptop")).to_be_visible()

    with page.expect_download() as info:
        page.get_by_role("link", name="Download ShareX uploader (.sxcu)").click()
    download = info.value
    assert download.suggested_filename == "chitram.sxcu"
    saved = tmp_path / "chitram.sxcu"
    download.save_as(saved)
    config = json.loads(saved.read_text("utf-8"))
    assert config["Headers"] == {"Authorization": f"Bearer {token}"}
    assert config["FileFormName"] == "file" and config["Body"] == "MultipartFormData"

    # What ShareX does with the file: POST the image as FileFormName to RequestURL.
    answer = httpx.request(
        config["RequestMethod"],
        config["RequestURL"],
        headers=config["Headers"],
        files={config["FileFormName"]: ("shot.png", picture(), "image/png")},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    link = config["URL"].replace("{json:url}", answer.json()["url"])
    assert httpx.get(link, timeout=30).status_code == 200

    page.goto("/tokens")  # the page no longer shows the secret
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.locator("header .usage")).to_contain_text("1 image")
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("None yet.")).to_be_visible()
    refused = httpx.post(
        config["RequestURL"],
        headers=config["Headers"],
        files={"file": ("shot.png", picture(hue=90), "image/png")},
        timeout=30,
    )
    assert refused.status_code == 401
    context.close()
