"""Thumbnails as jobs of the one runner: recorded with the upload, settled by the row's outcome,
taken over from a dead process, and adopted when an older database has none."""

from __future__ import annotations

import io
from datetime import timedelta

import anyio
import pytest
from PIL import Image as PILImage
from sqlalchemy import delete, select, update

from chitram_core import Chitram
from chitram_core.db import jobs as job_sql
from chitram_core.db.tables import jobs, thumbnails, utcnow
from chitram_core.errors import ImageWorkerCrashed, InvalidImage
from chitram_core.models import Principal
from chitram_core.thumbnailer import THUMBNAIL_JOB

pytestmark = pytest.mark.anyio


@pytest.fixture
def thumbnail_at_upload() -> bool:
    """Uploads leave their thumbnail to a job: that path is what this module is about (the
    upload's own render: test_thumbnail_at_upload.py)."""
    return False


def jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (320, 240), color).save(buf, "JPEG")
    return buf.getvalue()


async def row(chitram: Chitram, sha256: str) -> dict[str, object]:
    async with chitram.database.connect() as conn:
        found = (
            (await conn.execute(select(thumbnails).where(thumbnails.c.sha256 == sha256)))
            .mappings()
            .one()
        )
    return dict(found)


async def test_an_upload_records_its_thumbnail_job_which_goes_once_made(
    chitram: Chitram, user: Principal
) -> None:
    image = await chitram.images.upload(jpeg((1, 1, 1)), filename="a.jpg", owner=user)
    key = chitram.thumbnails.key_for(image.sha256)
    job = await chitram.jobs.job(THUMBNAIL_JOB, key)
    assert job is not None and job["state"] == "pending"
    assert await chitram.thumbnails.run_pending() == 1
    assert (await row(chitram, image.sha256))["status"] == "ready"
    assert await chitram.jobs.job(THUMBNAIL_JOB, key) is None


async def test_a_thumbnail_made_for_a_request_leaves_no_job_behind(
    chitram: Chitram, user: Principal
) -> None:
    image = await chitram.images.upload(jpeg((2, 2, 2)), filename="a.jpg", owner=user)
    await chitram.images.thumbnail(image.id)
    assert await chitram.jobs.job(THUMBNAIL_JOB, chitram.thumbnails.key_for(image.sha256)) is None


async def test_an_identical_upload_adds_no_second_job(chitram: Chitram, user: Principal) -> None:
    data = jpeg((3, 3, 3))
    first = await chitram.images.upload(data, filename="a.jpg", owner=user)
    assert await chitram.thumbnails.run_pending() == 1
    await chitram.images.upload(data, filename="b.jpg", owner=user)
    assert await chitram.jobs.job(THUMBNAIL_JOB, chitram.thumbnails.key_for(first.sha256)) is None


async def test_pending_thumbnails_without_a_job_are_adopted_once(
    chitram: Chitram, user: Principal
) -> None:
    """A database from before thumbnails were jobs: pending rows and no job rows."""
    images = [
        await chitram.images.upload(jpeg((i, 9, 9)), filename="a.jpg", owner=user) for i in (4, 5)
    ]
    async with chitram.database.transaction() as conn:
        await conn.execute(delete(jobs).where(jobs.c.kind == THUMBNAIL_JOB))
    assert await chitram.thumbnails.adopt() == 2
    assert await chitram.thumbnails.adopt() == 0  # idempotent
    for image in images:
        key = chitram.thumbnails.key_for(image.sha256)
        assert (await chitram.jobs.job(THUMBNAIL_JOB, key) or {}).get("state") == "pending"
    assert await chitram.thumbnails.run_pending() == 2


async def test_a_restart_adopts_and_makes_thumbnails_that_had_no_job(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory()
    async with Chitram(settings, background=False) as first:
        image = await first.images.upload(jpeg((6, 6, 6)), filename="a.jpg")
        async with first.database.transaction() as conn:
            await conn.execute(delete(jobs))
    async with Chitram(settings) as second:
        with anyio.fail_after(30):
            while (await row(second, image.sha256))["status"] != "ready":  # noqa: ASYNC110
                await anyio.sleep(0.05)


async def test_a_job_claimed_by_a_dead_process_is_taken_over_after_its_lease(
    chitram: Chitram, user: Principal
) -> None:
    image = await chitram.images.upload(jpeg((7, 7, 7)), filename="a.jpg", owner=user)
    key = chitram.thumbnails.key_for(image.sha256)
    now = utcnow()
    async with chitram.database.transaction() as conn:  # claimed, then the process was killed
        assert await job_sql.claim(conn, THUMBNAIL_JOB, key, now, now + timedelta(seconds=30))
    assert await chitram.thumbnails.run_pending() == 0  # leased: nobody else takes it
    async with chitram.database.transaction() as conn:  # the lease runs out
        await conn.execute(
            update(jobs).where(jobs.c.key == key).values(lease_until=now - timedelta(seconds=1))
        )
    assert await chitram.thumbnails.run_pending() == 1


async def test_an_undecodable_image_fails_its_job_once_and_for_all(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chitram_core.thumbnailer as module

    calls = 0

    async def undecodable(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        raise InvalidImage("not an image after all")

    monkeypatch.setattr(module, "render_thumbnail_async", undecodable)
    image = await chitram.images.upload(jpeg((8, 8, 8)), filename="a.jpg", owner=user)
    key = chitram.thumbnails.key_for(image.sha256)
    assert await chitram.thumbnails.run_pending() == 0
    job = await chitram.jobs.job(THUMBNAIL_JOB, key)
    assert job is not None and job["state"] == "failed" and "after all" in str(job["error"])
    assert (await row(chitram, image.sha256))["status"] == "failed"
    assert await chitram.thumbnails.run_pending() == 0
    assert calls == 1


async def test_a_worker_that_keeps_crashing_fails_after_a_few_attempts(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chitram_core.thumbnailer as module

    monkeypatch.setattr(module, "BASE_BACKOFF", 0.0)
    calls = 0

    async def crashing(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        raise ImageWorkerCrashed("the worker was killed by signal 9")

    monkeypatch.setattr(module, "render_thumbnail_async", crashing)
    image = await chitram.images.upload(jpeg((9, 9, 9)), filename="a.jpg", owner=user)
    for _ in range(module.MAX_ATTEMPTS + 2):
        await chitram.thumbnails.run_pending()
    assert calls == module.MAX_ATTEMPTS
    assert (await row(chitram, image.sha256))["status"] == "failed"
    job = await chitram.jobs.job(THUMBNAIL_JOB, chitram.thumbnails.key_for(image.sha256))
    assert job is not None and job["state"] == "failed"


async def test_a_deleted_image_is_not_thumbnailed_and_its_job_ends(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chitram_core.thumbnailer as module

    calls = 0
    real = module.render_thumbnail_async

    async def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(module, "render_thumbnail_async", counting)
    image = await chitram.images.upload(jpeg((10, 10, 10)), filename="a.jpg", owner=user)
    await chitram.images.delete(image.id, principal=user)
    key = chitram.thumbnails.key_for(image.sha256)
    assert await chitram.thumbnails.run_pending() == 0
    assert calls == 0
    assert await chitram.jobs.job(THUMBNAIL_JOB, key) is None


async def test_an_image_deleted_while_its_thumbnail_renders_leaves_no_thumbnail_behind(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The render's result is recorded only while the image's bytes are: deleted meanwhile, the
    written thumbnail is removed and the job ends."""
    import chitram_core.thumbnailer as module

    real = module.render_thumbnail_async
    image = await chitram.images.upload(jpeg((12, 12, 12)), filename="a.jpg", owner=user)

    async def deleted_meanwhile(*args, **kwargs):  # type: ignore[no-untyped-def]
        rendered = await real(*args, **kwargs)
        await chitram.images.delete(image.id, principal=user)
        return rendered

    monkeypatch.setattr(module, "render_thumbnail_async", deleted_meanwhile)
    key = chitram.thumbnails.key_for(image.sha256)
    assert await chitram.thumbnails.run_pending() == 0
    assert await chitram.jobs.job(THUMBNAIL_JOB, key) is None
    assert not await chitram.storage.exists(key)
    async with chitram.database.connect() as conn:
        found = await conn.execute(select(thumbnails).where(thumbnails.c.key == key))
        assert found.first() is None


async def test_job_counts_keep_the_thumbnails_states(chitram: Chitram, user: Principal) -> None:
    await chitram.images.upload(jpeg((11, 11, 11)), filename="a.jpg", owner=user)
    counts = await chitram.job_counts()
    assert counts[(THUMBNAIL_JOB, "pending")] == 1
    assert counts[(THUMBNAIL_JOB, "stalled")] == 0
    assert (THUMBNAIL_JOB, "running") not in counts
    await chitram.thumbnails.run_pending()
    counts = await chitram.job_counts()
    assert counts[(THUMBNAIL_JOB, "ready")] == 1 and counts[(THUMBNAIL_JOB, "pending")] == 0
