"""The thumbnail made in the upload's own image-engine job: ready when the upload answers, no
job left, the same bytes as the job path; a job whenever it cannot be made there; nothing
left behind and no ready thumbnail touched when the upload fails."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from chitram_core import Chitram
from chitram_core.db.tables import blobs, images, jobs, thumbnails
from chitram_core.errors import InvalidImage
from chitram_core.images.formats import probe
from chitram_core.images.thumbnails import ThumbnailParams
from chitram_core.models import Image, Principal
from chitram_core.service import ImageService
from chitram_core.thumbnailer import THUMBNAIL_JOB

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


def photo(seed: int, size: tuple[int, int] = (1024, 768)) -> bytes:
    """A JPEG with detail (gradients and noise), so resampling and encoding really matter."""
    rng = random.Random(seed)
    img = PILImage.linear_gradient("L").resize(size).convert("RGB")
    noise = PILImage.effect_noise(size, 40).convert("RGB")
    img = PILImage.blend(img, noise, 0.5)
    for _ in range(20):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        img.paste(colour, (x, y, min(size[0], x + 90), min(size[1], y + 60)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88)
    return buf.getvalue()


async def thumbnail_bytes(chitram: Chitram, image: Image) -> bytes:
    thumb = await chitram.images.thumbnail(image.id)
    return b"".join([c async for c in chitram.images.stream_thumbnail(thumb)])


async def status(chitram: Chitram, sha256: str) -> str | None:
    async with chitram.database.connect() as conn:
        row = await conn.execute(select(thumbnails.c.status).where(thumbnails.c.sha256 == sha256))
        return row.scalar_one_or_none()


async def thumbnail_jobs(chitram: Chitram) -> int:
    async with chitram.database.connect() as conn:
        query = select(func.count()).select_from(jobs).where(jobs.c.kind == THUMBNAIL_JOB)
        return int((await conn.execute(query)).scalar_one())


async def keys(chitram: Chitram, prefix: str) -> list[str]:
    return [key async for key in chitram.storage.keys(prefix)]


async def test_the_thumbnail_is_ready_when_the_upload_answers_and_no_job_is_left(
    chitram: Chitram,
    user: Principal,
    settings_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    data = photo(1)
    image = await chitram.images.upload(data, filename="p.jpg", owner=user)
    assert image.thumbnail_ready
    assert await status(chitram, image.sha256) == "ready"
    assert await thumbnail_jobs(chitram) == 0
    assert (await chitram.images.get(image.id)).thumbnail_ready
    assert await keys(chitram, "tmp") == []
    inline = await thumbnail_bytes(chitram, image)
    # The same bytes through the job path, in an instance that leaves thumbnails to jobs.
    settings = settings_factory(data_dir=tmp_path / "jobs", thumbnail_at_upload=False)
    async with Chitram(settings, background=False) as by_job:
        other = await by_job.images.upload(data, filename="p.jpg")
        assert not other.thumbnail_ready and await thumbnail_jobs(by_job) == 1
        assert await by_job.thumbnails.run_pending() == 1
        assert await thumbnail_bytes(by_job, other) == inline
    with PILImage.open(io.BytesIO(inline)) as img:
        assert img.size == (300, 225) and img.format == "JPEG"


async def test_a_job_makes_it_when_the_upload_job_would_not_fit_its_share_of_the_budget(
    settings_factory,  # type: ignore[no-untyped-def]
) -> None:
    # 32 MiB: verification (~9 MiB) fits; with the thumbnail (~18 MiB) the job would take more
    # than a quarter of the budget. The thumbnail job itself fits the whole budget.
    async with Chitram(settings_factory(image_memory_budget=32 * MiB), background=False) as c:
        image = await c.images.upload(photo(2), filename="p.jpg")
        assert not image.thumbnail_ready
        assert await status(c, image.sha256) == "pending" and await thumbnail_jobs(c) == 1
        assert await c.thumbnails.run_pending() == 1
        assert (await c.images.get(image.id)).thumbnail_ready
        assert await keys(c, "tmp") == []


async def test_a_thumbnail_the_upload_job_did_not_make_is_left_to_a_job(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chitram_core.ingest.image_job as image_job

    # Verification "took" all of the thumbnail's share of the decode timeout: the worker
    # skips the render, as it does when rendering fails.
    monkeypatch.setattr(image_job, "THUMBNAIL_TIME_SHARE", 0.0)
    image = await chitram.images.upload(photo(3), filename="p.jpg", owner=user)
    assert not image.thumbnail_ready
    assert await status(chitram, image.sha256) == "pending"
    assert await thumbnail_jobs(chitram) == 1
    assert await keys(chitram, "tmp") == [] and await keys(chitram, "thumbnails") == []
    assert await chitram.thumbnails.run_pending() == 1
    assert (await chitram.images.get(image.id)).thumbnail_ready


async def test_storage_refusing_the_thumbnail_does_not_fail_the_upload(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_move = chitram.storage.move

    async def move(src: str, dst: str) -> None:
        if dst.startswith("thumbnails/"):
            raise OSError("bucket unavailable")
        await real_move(src, dst)

    monkeypatch.setattr(chitram.storage, "move", move)
    image = await chitram.images.upload(photo(4), filename="p.jpg", owner=user)
    assert not image.thumbnail_ready
    assert await status(chitram, image.sha256) == "pending" and await thumbnail_jobs(chitram) == 1
    assert await keys(chitram, "tmp") == []
    monkeypatch.setattr(chitram.storage, "move", real_move)
    assert await chitram.thumbnails.run_pending() == 1


def test_in_the_upload_job_a_failed_render_gives_no_thumbnail_and_bad_bytes_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import chitram_core.engine.work as engine_work

    data = photo(5, (320, 240))
    info = probe(data)
    checks = dict(max_pixels=40_000_000, max_scans=100, strip=False)
    params = ThumbnailParams()
    made = engine_work.upload_image(
        data, info, placeholders=True, thumbnail=params, thumbnail_within=60.0, **checks
    )
    assert made.placeholders is not None and made.thumbnail is not None

    def broken(*args: object, **kwargs: object) -> None:
        raise InvalidImage("the encoder gave up")

    monkeypatch.setattr(engine_work, "render_thumbnail", broken)  # the render of other formats
    monkeypatch.setattr(engine_work, "encode", broken)  # a JPEG's, from verification's pixels
    made = engine_work.upload_image(
        data, info, placeholders=True, thumbnail=params, thumbnail_within=60.0, **checks
    )
    assert made.placeholders is not None and made.thumbnail is None
    with pytest.raises(InvalidImage):  # verification errors still fail the upload
        engine_work.upload_image(
            data[: len(data) // 2], info, thumbnail=params, thumbnail_within=60.0, **checks
        )


async def test_a_duplicate_keeps_the_ready_thumbnail_and_leaves_nothing(
    chitram: Chitram, user: Principal
) -> None:
    data = photo(6)
    first = await chitram.images.upload(data, filename="a.jpg", owner=user)
    key = chitram.thumbnails.key_for(first.sha256)
    before = await thumbnail_bytes(chitram, first)
    second = await chitram.images.upload(data, filename="b.jpg", owner=user)
    assert second.id != first.id and second.thumbnail_ready
    assert await thumbnail_bytes(chitram, second) == before
    assert await keys(chitram, "thumbnails") == [key]
    assert await keys(chitram, "tmp") == [] and await thumbnail_jobs(chitram) == 0


async def test_a_duplicate_makes_a_pending_thumbnail_ready_for_every_image(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chitram_core.ingest.image_job as image_job

    data = photo(7)
    monkeypatch.setattr(image_job, "THUMBNAIL_TIME_SHARE", 0.0)
    first = await chitram.images.upload(data, filename="a.jpg", owner=user)
    assert not (await chitram.images.get(first.id)).thumbnail_ready  # cached as pending
    monkeypatch.undo()
    second = await chitram.images.upload(data, filename="b.jpg", owner=user)
    assert second.thumbnail_ready
    assert await status(chitram, first.sha256) == "ready" and await thumbnail_jobs(chitram) == 0
    assert (await chitram.images.get(first.id)).thumbnail_ready  # the cached row was dropped
    assert await thumbnail_bytes(chitram, first) == await thumbnail_bytes(chitram, second)
    assert await keys(chitram, "tmp") == []


async def test_a_failure_in_the_record_transaction_leaves_nothing_and_keeps_the_thumbnail(
    chitram: Chitram, user: Principal, tmp_path: Path
) -> None:
    async def failing(conn: object, image_id: str) -> None:
        raise RuntimeError("the tagging job could not be recorded")

    failing_service = ImageService(
        chitram.settings,
        chitram.database,
        chitram.storage,
        engine=chitram.engine,
        thumbnailer=chitram.thumbnails,
        record_hooks=(failing,),
    )
    data = photo(8)
    kept = await chitram.images.upload(data, filename="a.jpg", owner=user)
    key = chitram.thumbnails.key_for(kept.sha256)
    path = tmp_path / "data" / "images" / key
    before, stat = await thumbnail_bytes(chitram, kept), path.stat()
    with pytest.raises(RuntimeError):
        await failing_service.upload(data, filename="b.jpg", owner=user)
    with pytest.raises(RuntimeError):
        await failing_service.upload(photo(9), filename="c.jpg", owner=user)
    assert await keys(chitram, "tmp") == []
    assert await keys(chitram, "thumbnails") == [key]
    assert len(await keys(chitram, "blobs")) == 1
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert await thumbnail_bytes(chitram, kept) == before
    assert await status(chitram, kept.sha256) == "ready"
    async with chitram.database.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(images))).scalar_one() == 1
        assert (await conn.execute(select(func.count()).select_from(blobs))).scalar_one() == 1
