"""``/docs`` in headless Chromium: the API explorer runs from files this server ships."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from webkit import Server

pytestmark = pytest.mark.browser


def test_the_api_explorer_lists_the_operations_from_this_server_alone(
    browser: Any, server: Server
) -> None:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    problems: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or r.url))
    page.on("response", lambda r: problems.append(r.url) if r.status >= 400 else None)
    answer = page.goto("/docs")
    assert answer is not None and answer.status == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    page.wait_for_selector(".opblock", timeout=30_000)
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/images/upload" in [o.strip().replace("\u200b", "") for o in operations]
    assert "/api/v1/auth/login" in [o.strip().replace("\u200b", "") for o in operations]
    assert problems == []
    assert hosts == {"127.0.0.1"}
    context.close()
