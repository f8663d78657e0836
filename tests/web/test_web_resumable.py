"""The web UI sends a file over 8 MiB in resumable chunks (tus-js-client, served by the app) and
finishes it after the connection drops mid-way, in headless Chromium against a real server."""

from __future__ import annotations

import hashlib
import io
import random
from typing import Any

import pytest
from PIL import Image as PILImage
from webkit import PASSWORD, Server

pytestmark = pytest.mark.browser


def noisy_png(side: int, seed: int) -> bytes:
    pixels = random.Random(seed).randbytes(side * side * 3)
    out = io.BytesIO()
    PILImage.frombytes("RGB", (side, side), pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def test_a_large_file_goes_up_in_chunks_and_survives_a_dropped_connection(
    browser: Any, server: Server
) -> None:
    data = noisy_png(2000, seed=26)  # about 12 MB: over the 8 MiB line, three 4 MiB chunks
    assert len(data) > 8 * 1024 * 1024
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.goto("/register")
    page.get_by_label("Email").fill("resumable@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="My images")).to_be_visible()

    seen: list[str] = []

    def drop_the_second_chunk(route: Any) -> None:
        request = route.request
        seen.append(request.method)
        if request.method == "PATCH" and seen.count("PATCH") == 2:
            route.abort("connectionreset")  # the network drops mid-upload
        else:
            route.continue_()

    page.route("**/ui/api/uploads/*", drop_the_second_chunk)
    page.goto("/upload")
    page.locator("#files").set_input_files(
        files=[{"name": "panorama.png", "mimeType": "image/png", "buffer": data}]
    )
    done = page.locator(".upload-item.done")
    expect(done).to_have_count(1, timeout=120_000)
    expect(done).to_contain_text("2000 \u00d7 2000")
    assert page.eval_on_selector(".upload-item.done progress", "(bar) => bar.value") == 100
    assert seen.count("PATCH") >= 4  # three chunks, one of them sent twice
    assert "HEAD" in seen  # tus-js-client asked where the upload stood before going on
    image_id = done.get_attribute("data-image-id")
    stored = server.api.get(f"/api/v1/images/{image_id}/file", timeout=30)
    assert hashlib.sha256(stored.content).hexdigest() == hashlib.sha256(data).hexdigest()
    context.close()
