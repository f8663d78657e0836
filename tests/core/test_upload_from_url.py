"""``chitram.images.upload_from_url``: the SDK's upload by URL, through the same pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from imagekit import jpeg_bytes, png_bytes
from originkit import body, serve

from chitram_core import Chitram, Settings
from chitram_core.errors import FetchFailed, FileTooLarge, UrlNotAllowed

pytestmark = pytest.mark.anyio


def settings(tmp_path: Path, port: int, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "upload_rate_limit": None,
        "auth_rate_limit": None,
        "fetch_allow_ports": (port,),
        "fetch_allow_networks": ("127.0.0.1/32",),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_an_image_is_fetched_and_owned(tmp_path: Path) -> None:
    data = png_bytes(33, 21)
    with serve({"/dir/sun%20set.png": body(data, "text/html")}) as origin:
        async with Chitram(settings(tmp_path, origin.port), background=False) as chitram:
            session = await chitram.auth.register("url@example.com", "correct horse battery")
            owner = await chitram.auth.authenticate(session.access_token)
            image = await chitram.images.upload_from_url(
                origin.url("/dir/sun%20set.png"), owner=owner
            )
            assert (image.width, image.height, image.content_type) == (33, 21, "image/png")
            assert image.filename == "sun set.png"
            page = await chitram.images.list(owner)
            assert [i.id for i in page.items] == [image.id]


async def test_refusals_keep_nothing(tmp_path: Path) -> None:
    with serve({"/big.jpg": body(jpeg_bytes(600, 600))}) as origin:
        async with Chitram(
            settings(tmp_path, origin.port, max_upload_bytes=1000), background=False
        ) as chitram:
            with pytest.raises(FileTooLarge):
                await chitram.images.upload_from_url(origin.url("/big.jpg"))
            with pytest.raises(FetchFailed, match="404"):
                await chitram.images.upload_from_url(origin.url("/missing.jpg"))
            with pytest.raises(UrlNotAllowed):
                await chitram.images.upload_from_url(f"http://127.0.0.2:{origin.port}/big.jpg")
            assert [k async for k in chitram.storage.keys("tmp/")] == []
            assert [k async for k in chitram.storage.keys("blobs/")] == []
    assert origin.hits == ["/big.jpg", "/missing.jpg"]
