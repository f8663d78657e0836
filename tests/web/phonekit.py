"""What a phone receives: a Chromium context the size of a phone, and the bytes of every
response a page gets, for the image page's browser test and ``benchmarks/formats.py``."""

from __future__ import annotations

from typing import Any

PHONE = {"width": 390, "height": 844}
"""CSS pixels; the context has 3 device pixels to each."""


def phone_context(browser: Any, base_url: str) -> Any:
    return browser.new_context(
        base_url=base_url,
        viewport=PHONE,
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
    )


def count_received(page: Any) -> dict[str, int]:
    """Header and body bytes of each response ``page`` receives from now on, by URL (filled in
    as the requests finish)."""
    received: dict[str, int] = {}

    def count(request: Any) -> None:
        sizes = request.sizes()
        received[request.url] = sizes["responseHeadersSize"] + sizes["responseBodySize"]

    page.on("requestfinished", count)
    return received
