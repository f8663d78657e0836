"""The gallery's responsive images: srcset from the presets, the placeholder colour."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import pytest
from PIL import Image as PILImage
from webkit import open_web, picture

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_gallery_cards_have_srcset_of_real_widths_and_a_placeholder(tmp_path: Path) -> None:
    async with open_web(tmp_path, variant_presets=("w320", "w640", "w1280", "h200")) as web:
        await web.register()
        token = await web.form("/upload")
        resp = await web.client.post(
            "/ui/api/images/upload",
            files={"file": ("hills.png", picture(900, 600), "image/png")},
            headers={"X-CSRF-Token": token},
        )
        image = resp.json()
        page = (await web.client.get("/")).text
        card = re.search(r'<li class="card" data-id="' + image["id"] + r'">.*?</li>', page, re.S)
        assert card is not None
        placeholder = re.search(r'data-placeholder="([^"]*)"', card.group(0))
        assert placeholder is not None and placeholder.group(1) == image["dominant_color"]
        srcset = re.search(r'srcset="([^"]*)"', card.group(0))
        assert srcset is not None
        entries = [e.strip().rsplit(" ", 1) for e in html.unescape(srcset.group(1)).split(",")]
        # w1280 is capped to the image's 900 px; h200 is not a width preset
        assert [w for _, w in entries] == ["320w", "640w", "900w"]
        for url, width in entries:
            got = await web.client.get(url)
            assert got.status_code == 200, got.text
            with PILImage.open(io.BytesIO(got.content)) as img:
                assert f"{img.width}w" == width
        assert 'data-presets="w320,w640,w1280,h200"' in page
