"""The moderation gate: the built-in http moderator against a fake service on 127.0.0.1, its
conformance, and what a rejected or unmoderated upload leaves behind (nothing)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from imagekit import png_bytes
from originkit import Origin, serve, verdicts
from PIL import Image as PILImage

from chitram_core import Chitram, Settings
from chitram_core.errors import ContentRejected, ModeratorUnavailable
from chitram_core.moderation import Moderator
from chitram_core.moderation.http import HttpModerator
from chitram_core.testing.moderator_conformance import ModeratorConformance

pytestmark = pytest.mark.anyio

ALLOW = {"verdict": "allow"}
REJECT = {"verdict": "reject", "reason": "not on this site"}


def every_second(n: int) -> dict[str, object]:
    return REJECT if n % 2 else ALLOW


def http_moderator(origin: Origin, path: str = "/check") -> HttpModerator:
    return HttpModerator(Settings(moderators=("http",), moderation_url=origin.url(path)))


class TestHttpModeratorConformance(ModeratorConformance):
    @pytest.fixture
    def service(self) -> Any:
        routes = {
            "/allow": verdicts(lambda n: ALLOW),
            "/reject": verdicts(lambda n: REJECT),
            "/down": verdicts(lambda n: None),
        }
        with serve(routes) as origin:
            yield origin

    @pytest.fixture
    async def allowing(self, service: Origin) -> AsyncIterator[Moderator]:
        moderator = http_moderator(service, "/allow")
        yield moderator
        await moderator.close()

    @pytest.fixture
    async def rejecting(self, service: Origin) -> AsyncIterator[Moderator]:
        moderator = http_moderator(service, "/reject")
        yield moderator
        await moderator.close()

    @pytest.fixture
    async def unavailable(self, service: Origin) -> AsyncIterator[Moderator | None]:
        moderator = http_moderator(service, "/down")
        yield moderator
        await moderator.close()


@asynccontextmanager
async def moderated(
    tmp_path: Path, decide: Callable[[int], dict[str, object] | None], **overrides: Any
) -> AsyncIterator[tuple[Chitram, Origin]]:
    with serve({"/check": verdicts(decide)}) as service:
        settings = Settings(
            data_dir=tmp_path,
            upload_rate_limit=None,
            auth_rate_limit=None,
            moderators=("http",),
            moderation_url=service.url("/check"),
            **overrides,
        )
        async with Chitram(settings, background=False) as chitram:
            yield chitram, service


async def test_the_service_gets_a_small_metadata_free_jpeg_of_the_upload(tmp_path: Path) -> None:
    big = io.BytesIO()
    exif = PILImage.Exif()
    exif[0x010F] = "SecretCam"
    PILImage.new("RGB", (2400, 1200), (10, 200, 90)).save(big, "JPEG", exif=exif)
    async with moderated(tmp_path, lambda n: ALLOW) as (chitram, service):
        image = await chitram.images.upload(big.getvalue(), filename="wide.jpg")
    assert image.width == 2400
    (sent,) = service.bodies
    with PILImage.open(io.BytesIO(sent)) as preview:
        assert preview.format == "JPEG"
        assert max(preview.size) <= 1024 and preview.size[0] == 1024
        assert not preview.getexif()
    assert b"SecretCam" not in sent


async def test_every_second_upload_is_rejected_and_leaves_nothing(tmp_path: Path) -> None:
    async with moderated(tmp_path, every_second) as (chitram, _service):
        before = [key async for key in chitram.storage.keys("")]
        kept = []
        for i in range(4):
            data = png_bytes(20 + i, 20)
            if i % 2:
                with pytest.raises(ContentRejected, match="not on this site"):
                    await chitram.images.upload(data)
            else:
                kept.append(await chitram.images.upload(data))
        after = [key async for key in chitram.storage.keys("")]
        new = sorted(set(after) - set(before))
        assert not [k for k in new if k.startswith("tmp/")]
        assert len([k for k in new if k.startswith("blobs/")]) == len(kept) == 2
        report = await chitram.sweep(older_than=0)
        assert report.orphans_removed == 0


async def test_a_rejected_upload_leaves_no_row(tmp_path: Path) -> None:
    async with moderated(tmp_path, lambda n: REJECT) as (chitram, _service):
        user = await chitram.auth.register("mod@example.com", "correct horse battery")
        owner = await chitram.auth.authenticate(user.access_token)
        with pytest.raises(ContentRejected):
            await chitram.images.upload(png_bytes(), owner=owner)
        page = await chitram.images.list(owner)
        assert list(page.items) == []
        assert [key async for key in chitram.storage.keys("tmp/")] == []
        assert [key async for key in chitram.storage.keys("blobs/")] == []
        assert sum((await chitram.job_counts()).values()) == 0


async def test_a_down_moderator_refuses_uploads(tmp_path: Path) -> None:
    async with moderated(tmp_path, lambda n: None) as (chitram, _service):
        with pytest.raises(ModeratorUnavailable) as caught:
            await chitram.images.upload(png_bytes())
        assert caught.value.status == 503 and caught.value.code == "PROVIDER_UNAVAILABLE"
        assert [key async for key in chitram.storage.keys("blobs/")] == []


async def test_fail_open_accepts_while_the_moderator_is_down(tmp_path: Path) -> None:
    async with moderated(tmp_path, lambda n: None, moderation_fail_open=True) as (chitram, _s):
        image = await chitram.images.upload(png_bytes())
        assert image.id


class Broken:
    """A moderator plugin that fails in the ways a plugin can: raising, or answering nonsense."""

    name = "broken"

    def __init__(self, settings: Settings) -> None:
        self.calls = 0

    async def check(self, item: Any) -> Any:
        self.calls += 1
        if self.calls % 2:
            raise RuntimeError("boom")
        return {"verdict": "allow"}


@pytest.fixture
def broken_plugin() -> Any:
    from chitram_core import plugins

    plugins.register(plugins.MODERATORS, "broken", Broken)
    yield
    plugins.unregister(plugins.MODERATORS, "broken")


@pytest.mark.parametrize("fail_open", [False, True])
async def test_a_plugin_that_raises_or_answers_nonsense_counts_as_down(
    tmp_path: Path, broken_plugin: None, fail_open: bool
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        upload_rate_limit=None,
        auth_rate_limit=None,
        moderators=("broken",),
        moderation_fail_open=fail_open,
    )
    async with Chitram(settings, background=False) as chitram:
        for i in range(2):
            if fail_open:
                assert (await chitram.images.upload(png_bytes(10 + i, 10))).id
            else:
                with pytest.raises(ModeratorUnavailable):
                    await chitram.images.upload(png_bytes(10 + i, 10))
        stored = [key async for key in chitram.storage.keys("blobs/")]
        assert len(stored) == (2 if fail_open else 0)
