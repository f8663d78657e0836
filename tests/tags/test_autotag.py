"""Auto-tagging: a durable job after the upload, a real OpenAI-compatible server
(the fake, on 127.0.0.1), retries through an outage and across a restart, and the rules for
which AI tags are kept."""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import make_settings, new_user, picture
from fake_openai import FakeOpenAI
from PIL import Image

from chitram_core import Chitram, plugins
from chitram_core.errors import Forbidden, ImageNotFound
from chitram_core.models import Check, ImageTag, SuggestedTag
from chitram_core.settings import Settings
from chitram_core.tags.service import TAG_JOB

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def opened(
    tmp_path: Path, database_url: str, *, background: bool = True, **overrides: Any
) -> AsyncIterator[Chitram]:
    settings = make_settings(tmp_path, database_url=database_url, auto_migrate=True, **overrides)
    async with Chitram(settings, background=background) as chitram:
        yield chitram


async def tags_when(
    chitram: Chitram, image_id: str, ready: Callable[[list[ImageTag]], bool]
) -> list[ImageTag]:
    """The image's tags once ``ready`` holds (the job runs in the background)."""
    with anyio.fail_after(60):  # a hang guard, not a performance assertion
        while True:
            found = await chitram.tags.for_image(image_id)
            if ready(found):
                return found
            await anyio.sleep(0.05)


def has_ai(found: list[ImageTag]) -> bool:
    return any(t.source == "ai" for t in found)


def camera_jpeg(size: tuple[int, int] = (2400, 1600)) -> bytes:
    """A large JPEG with EXIF (orientation, GPS, camera) and an ICC profile."""
    img = Image.new("RGB", size, (200, 120, 40))
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "Camera maker"
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPS latitude
    buf = io.BytesIO()
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img.save(buf, "JPEG", exif=exif.tobytes(), icc_profile=icc, quality=80)
    return buf.getvalue()


async def test_an_upload_gets_ai_tags_from_the_model(
    tmp_path: Path, database_url: str, openai: FakeOpenAI
) -> None:
    async with opened(
        tmp_path, database_url, taggers=("openai",), openai_base_url=openai.base_url
    ) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(camera_jpeg(), filename="trip.jpg", owner=owner)
        found = await tags_when(chitram, image.id, has_ai)
        assert found == [
            ImageTag(name="cat", category=None, source="ai", confidence=90),
            ImageTag(name="dog", category=None, source="ai", confidence=90),
            ImageTag(name="sunny beach", category=None, source="ai", confidence=90),
        ]
        (seen,) = openai.requests
        assert seen.image is not None
        assert seen.image.format == "JPEG"
        assert max(seen.image.width, seen.image.height) <= 512
        assert (seen.image.width, seen.image.height) == (512, 341)
        assert not seen.image.has_exif and not seen.image.has_icc
        # the owner finds it by tag and by text
        assert [i.id for i in (await chitram.images.list(owner, tags=["cat"])).items] == [image.id]
        assert [i.id for i in (await chitram.images.list(owner, query="sun")).items] == [image.id]
        assert await chitram.jobs.job(TAG_JOB, image.id) is None  # done: the row is gone


async def test_an_upload_while_the_model_is_down_is_tagged_when_it_is_back(
    tmp_path: Path, database_url: str, openai: FakeOpenAI
) -> None:
    async with opened(
        tmp_path, database_url, taggers=("openai",), openai_base_url=openai.base_url
    ) as chitram:
        owner = await new_user(chitram)
        openai.down()
        image = await chitram.images.upload(picture(1), owner=owner)  # does not wait for it
        assert image.id
        with anyio.fail_after(60):
            while True:  # the runner tried, failed, and scheduled a retry
                job = await chitram.jobs.job(TAG_JOB, image.id)
                assert job is not None
                if job["error"]:
                    break
                await anyio.sleep(0.05)
        assert job["state"] in ("pending", "running")
        assert await chitram.tags.for_image(image.id) == []
        openai.up()
        found = await tags_when(chitram, image.id, has_ai)
        assert {t.name for t in found} == {"cat", "dog", "sunny beach"}


async def test_a_pending_job_is_picked_up_after_a_restart(
    tmp_path: Path, database_url: str, openai: FakeOpenAI
) -> None:
    common = {"taggers": ("openai",), "openai_base_url": openai.base_url}
    async with opened(tmp_path, database_url, background=False, **common) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(picture(2), owner=owner)
        job = await chitram.jobs.job(TAG_JOB, image.id)
        assert job is not None and job["state"] == "pending"
    assert openai.requests == []
    async with opened(tmp_path, database_url, **common) as chitram:
        found = await tags_when(chitram, image.id, has_ai)
        assert {t.name for t in found} == {"cat", "dog", "sunny beach"}


async def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(
    tmp_path: Path, database_url: str, openai: FakeOpenAI
) -> None:
    from datetime import timedelta

    from chitram_core.db import jobs as job_sql
    from chitram_core.db.tables import utcnow

    common = {"taggers": ("openai",), "openai_base_url": openai.base_url}
    async with opened(tmp_path, database_url, background=False, **common) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(picture(3), owner=owner)
        now = utcnow()
        async with chitram.database.transaction() as conn:  # a worker claims it, then "dies"
            assert await job_sql.claim(conn, TAG_JOB, image.id, now, now + timedelta(seconds=1))
        assert await chitram.jobs.run_due() == 0  # leased: nobody else takes it
        async with chitram.database.transaction() as conn:  # the lease runs out
            assert await job_sql.claim(
                conn, TAG_JOB, image.id, now + timedelta(seconds=2), now + timedelta(seconds=3)
            )
        await chitram.database.engine.dispose()
    # A later process: the lease (set by the claim above) ends in the past for it.
    async with opened(tmp_path, database_url, **common) as chitram:
        found = await tags_when(chitram, image.id, has_ai)
        assert has_ai(found)


async def test_no_taggers_means_no_jobs(tmp_path: Path, database_url: str) -> None:
    async with opened(tmp_path, database_url, background=False) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(picture(4), owner=owner)
        assert await chitram.jobs.job(TAG_JOB, image.id) is None
        await chitram.tags.add(image.id, "kept", principal=owner)
        assert await chitram.tags.auto_tag(image.id, principal=owner) == []
        assert [t.name for t in await chitram.tags.for_image(image.id)] == ["kept"]


async def test_ai_tags_never_replace_a_user_tag(
    tmp_path: Path, database_url: str, openai: FakeOpenAI
) -> None:
    async with opened(
        tmp_path,
        database_url,
        background=False,
        taggers=("openai",),
        openai_base_url=openai.base_url,
    ) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(picture(5), owner=owner)
        await chitram.tags.add(image.id, "Cat", principal=owner, category="pet")
        applied = await chitram.tags.auto_tag(image.id, principal=owner)
        assert {t.name for t in applied} == {"dog", "sunny beach"}
        found = {t.name: t for t in await chitram.tags.for_image(image.id)}
        assert found["cat"] == ImageTag(name="cat", category="pet", source="user", confidence=None)
        # running again replaces the earlier AI tags rather than piling them up
        openai.answer = '["Bird"]'
        await chitram.tags.auto_tag(image.id, principal=owner)
        assert {t.name: t.source for t in await chitram.tags.for_image(image.id)} == {
            "cat": "user",
            "bird": "ai",
        }


class FixedTagger:
    """A third-party tagger registered in-process, as a plugin author would ship one."""

    name = "fixed"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def suggest(self, image: bytes, content_type: str) -> Sequence[SuggestedTag]:
        return [
            SuggestedTag("Zebra", 99),
            SuggestedTag("apple", 95, "fruit"),
            SuggestedTag("weak guess", 69),
            SuggestedTag("barely", 70),
            SuggestedTag("apple", 80),
            SuggestedTag("!!", 100),
            SuggestedTag("one", 90),
            SuggestedTag("two", 90),
            SuggestedTag("three", 90),
        ]

    async def health(self) -> Check:
        return Check(status="healthy")


@pytest.fixture
def fixed_tagger() -> AsyncIterator[None]:  # type: ignore[misc]
    plugins.register(plugins.TAGGERS, "fixed", FixedTagger)
    yield
    plugins.unregister(plugins.TAGGERS, "fixed")


async def test_at_most_max_ai_tags_above_min_confidence(
    tmp_path: Path, database_url: str, fixed_tagger: None
) -> None:
    async with opened(tmp_path, database_url, background=False, taggers=("fixed",)) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(picture(6), owner=owner)
        applied = await chitram.tags.auto_tag(image.id)
        assert [(t.name, t.confidence) for t in applied] == [
            ("apple", 95),
            ("one", 90),
            ("three", 90),
            ("two", 90),
            ("zebra", 99),
        ]
        assert {t.name: t.category for t in applied}["apple"] == "fruit"
    async with opened(
        tmp_path,
        database_url,
        background=False,
        taggers=("fixed",),
        tags_max_ai=2,
        tags_min_confidence=96,
    ) as chitram:
        applied = await chitram.tags.auto_tag(image.id)
        assert [t.name for t in applied] == ["zebra"]


async def test_taggers_combine_and_palette_runs_locally(
    tmp_path: Path, database_url: str, openai: FakeOpenAI
) -> None:
    async with opened(
        tmp_path,
        database_url,
        background=False,
        taggers=("palette", "openai"),
        openai_base_url=openai.base_url,
        tags_max_ai=10,
    ) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(picture(7, size=(80, 40)), owner=owner)
        await chitram.jobs.run_due()
        found = {t.name: t for t in await chitram.tags.for_image(image.id)}
        assert found["landscape"].category == "orientation"
        assert {"cat", "dog", "sunny beach"} <= set(found)


async def test_only_the_owner_may_run_the_taggers(
    tmp_path: Path, database_url: str, openai: FakeOpenAI
) -> None:
    async with opened(
        tmp_path,
        database_url,
        background=False,
        taggers=("openai",),
        openai_base_url=openai.base_url,
    ) as chitram:
        owner = await new_user(chitram)
        stranger = await new_user(chitram, "stranger")
        image = await chitram.images.upload(picture(8), owner=owner)
        with pytest.raises(Forbidden):
            await chitram.tags.auto_tag(image.id, principal=stranger)
        with pytest.raises(ImageNotFound):
            await chitram.tags.auto_tag("00000000-0000-0000-0000-000000000000", principal=owner)


async def test_a_deleted_image_s_job_just_ends(
    tmp_path: Path, database_url: str, openai: FakeOpenAI
) -> None:
    async with opened(
        tmp_path,
        database_url,
        background=False,
        taggers=("openai",),
        openai_base_url=openai.base_url,
    ) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(picture(9), owner=owner)
        await chitram.images.delete(image.id, principal=owner)
        assert await chitram.jobs.run_due() == 1
        assert await chitram.jobs.job(TAG_JOB, image.id) is None
        assert openai.requests == []


async def test_job_counts_report_tag_jobs_beside_thumbnails(
    tmp_path: Path, database_url: str, openai: FakeOpenAI
) -> None:
    """What ``chitram_jobs{kind,state}`` is fed: every job kind, with zeros for empty states."""
    async with opened(
        tmp_path, database_url, taggers=("openai",), openai_base_url=openai.base_url
    ) as chitram:
        counts = await chitram.job_counts()
        assert counts[(TAG_JOB, "pending")] == 0 and counts[(TAG_JOB, "failed")] == 0
        owner = await new_user(chitram)
        openai.down()
        image = await chitram.images.upload(picture(2), owner=owner)
        with anyio.fail_after(60):
            while True:  # the runner tried, failed, and scheduled a retry
                job = await chitram.jobs.job(TAG_JOB, image.id)
                if job is not None and job["error"]:
                    break
                await anyio.sleep(0.05)
        counts = await chitram.job_counts()
        assert counts[(TAG_JOB, "pending")] + counts[(TAG_JOB, "running")] == 1
        assert ("thumbnail", "ready") in counts
        openai.up()


class ShuffledTagger:
    """Suggests the same five tags every time, in a different order each call."""

    name = "shuffled"
    calls = 0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def suggest(self, image: bytes, content_type: str) -> Sequence[SuggestedTag]:
        ShuffledTagger.calls += 1
        names = ["red", "green", "blue", "cyan", "pink"]
        random.Random(ShuffledTagger.calls).shuffle(names)
        return [SuggestedTag(name, 95 - i) for i, name in enumerate(names)]  # ranked in that order

    async def health(self) -> Check:
        return Check(status="healthy")


async def test_concurrent_tagging_and_deletes_of_images_sharing_tags_never_fail(
    tmp_path: Path, database_url: str
) -> None:
    """AI tags replaced on several images at once, in different orders, while some of those
    images are deleted: every call ends as it should (tagged, or the image is gone), and every
    tag's count is the number of images carrying it. On PostgreSQL, the count triggers would
    otherwise take tag rows in each transaction's own order and deadlock."""
    plugins.register(plugins.TAGGERS, "shuffled", ShuffledTagger)
    try:
        async with opened(
            tmp_path, database_url, background=False, taggers=("shuffled",)
        ) as chitram:
            owner = await new_user(chitram)
            images = [await chitram.images.upload(picture(40 + i), owner=owner) for i in range(8)]
            for image in images:
                await chitram.tags.auto_tag(image.id)
            doomed = {image.id for image in images[::2]}
            failures: list[BaseException] = []

            async def tag(image_id: str) -> None:
                try:
                    await chitram.tags.auto_tag(image_id)
                except ImageNotFound:
                    assert image_id in doomed
                except Exception as exc:  # anything else is the failure this test is about
                    failures.append(exc)

            async def delete(image_id: str) -> None:
                try:
                    await chitram.images.delete(image_id, principal=owner)
                except Exception as exc:
                    failures.append(exc)

            with anyio.fail_after(120):  # a hang guard, not a performance assertion
                async with anyio.create_task_group() as tg:
                    for round_ in range(3):
                        for image in images:
                            tg.start_soon(tag, image.id)
                            if round_ == 1 and image.id in doomed:
                                tg.start_soon(delete, image.id)
            assert failures == []
            popular = {t.name: t.count for t in await chitram.tags.popular(principal=owner)}
            kept = len(images) - len(doomed)
            assert popular == {n: kept for n in ("red", "green", "blue", "cyan", "pink")}
    finally:
        plugins.unregister(plugins.TAGGERS, "shuffled")
