"""The web UI's pages over HTTP: an HTML 404 for browsers at unknown paths, tag chips that link
to the tag's gallery for every visitor, and the image page's sized image with its srcset and a
link to the original."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import pytest
from PIL import Image as PILImage
from webkit import open_web, picture

pytestmark = pytest.mark.anyio

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("path", ["/nowhere", "/images", "/ui/nothing/here", "/a/b/c.html"])
async def test_an_unknown_path_is_an_html_404_page_for_a_browser(tmp_path: Path, path: str) -> None:
    async with open_web(tmp_path) as web:
        resp = await web.client.get(path, headers={"Accept": BROWSER_ACCEPT})
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in resp.text and 'href="/"' in resp.text
        assert "default-src 'none'" in resp.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/api/v1/nowhere", BROWSER_ACCEPT),
        ("/api/v1/images/x/y/z", BROWSER_ACCEPT),
        ("/nowhere", "application/json"),
        ("/nowhere", "*/*"),
    ],
)
async def test_api_paths_and_non_browsers_keep_the_json_404(
    tmp_path: Path, path: str, accept: str
) -> None:
    async with open_web(tmp_path) as web:
        resp = await web.client.get(path, headers={"Accept": accept})
        assert resp.status_code == 404
        assert resp.json()["detail"]["code"] == "NOT_FOUND"


async def upload(web: object, width: int = 1600, height: int = 1000) -> dict[str, object]:
    token = await web.form("/upload")  # type: ignore[attr-defined]
    resp = await web.client.post(  # type: ignore[attr-defined]
        "/ui/api/images/upload",
        files={"file": ("hills.png", picture(width, height), "image/png")},
        headers={"X-CSRF-Token": token},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def test_tag_chips_link_to_the_tags_gallery_for_visitors_too(tmp_path: Path) -> None:
    async with open_web(tmp_path) as web:
        await web.register()
        image = await upload(web, 64, 48)
        page = await web.client.get(f"/images/{image['id']}")
        add = await web.client.post(
            f"/images/{image['id']}/tags",
            data={
                "tag": "sunny beach",
                "csrf_token": re.findall(r'name="csrf_token" value="([^"]+)"', page.text)[0],
            },
        )
        assert add.status_code == 303, add.text
        web.client.cookies.clear()  # a visitor who is not the owner
        public = await web.client.get(f"/images/{image['id']}")
        chip = re.search(r'<a class="tag-name" href="([^"]+)">sunny beach</a>', public.text)
        assert chip is not None and html.unescape(chip.group(1)) == "/?tag=sunny%20beach"
        assert "#tags-title" not in public.text


async def test_the_image_page_shows_a_sized_variant_with_srcset_and_links_the_original(
    tmp_path: Path,
) -> None:
    async with open_web(tmp_path, variant_presets=("w320", "w640", "w1280", "w1920")) as web:
        await web.register()
        image = await upload(web)
        page = (await web.client.get(f"/images/{image['id']}")).text
        img = re.search(r"<img [^>]*>", page)
        assert img is not None
        src = re.search(r' src="([^"]+)"', img.group(0))
        srcset = re.search(r' srcset="([^"]+)"', img.group(0))
        assert src is not None and srcset is not None
        assert src.group(1) == f"/api/v1/images/{image['id']}/variants/w1280"
        entries = [e.strip().rsplit(" ", 1) for e in html.unescape(srcset.group(1)).split(",")]
        assert [w for _, w in entries] == ["320w", "640w", "1280w", "1600w"]
        assert 'sizes="' in img.group(0)
        original = f"/api/v1/images/{image['id']}/file"
        assert re.search(rf'<a id="original-link" href="{re.escape(original)}">', page)
        shown = await web.client.get(src.group(1))
        assert shown.status_code == 200
        with PILImage.open(io.BytesIO(shown.content)) as picture_shown:
            assert picture_shown.width == 1280


async def test_without_width_presets_the_image_page_shows_the_original(tmp_path: Path) -> None:
    async with open_web(tmp_path, variant_presets=("h200",)) as web:
        await web.register()
        image = await upload(web, 300, 200)
        page = (await web.client.get(f"/images/{image['id']}")).text
        assert f'src="/api/v1/images/{image["id"]}/file"' in page
