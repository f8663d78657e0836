"""Durable thumbnail jobs: made after restart, shared, retried, and deleted with their image."""

from __future__ import annotations

import io

import anyio
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from chitram_core import Chitram
from chitram_core.db.tables import thumbnails
from chitram_core.errors import InvalidImage
from chitram_core.models import Principal

pytestmark = pytest.mark.anyio


@pytest.fixture
def thumbnail_at_upload() -> bool:
    """Uploads leave their thumbnail to a job: that path is what this module is about (the
    upload's own render: test_thumbnail_at_upload.py)."""
    return False


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


async def statuses(chitram: Chitram) -> dict[str, str]:
    async with chitram.database.connect() as conn:
        rows = await conn.execute(select(thumbnails.c.sha256, thumbnails.c.status))
        return {r[0]: r[1] for r in rows}


async def test_pending_thumbnails_are_made_after_a_restart(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory()
    async with Chitram(settings, background=False) as first:
        session = await first.auth.register("restart@example.com", "pass word 4 tests")
        owner = await first.auth.authenticate(session.access_token)
        uploaded = [
            await first.images.upload(jpeg((i * 40, 0, 0)), filename=f"{i}.jpg", owner=owner)
            for i in range(3)
        ]
        assert set((await statuses(first)).values()) == {"pending"}
    async with Chitram(settings) as second:  # background work on: the start-up pass renders
        with anyio.fail_after(30):
            while set((await statuses(second)).values()) != {"ready"}:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        for image in uploaded:
            assert (await second.images.get(image.id)).thumbnail_ready


async def test_concurrent_requests_share_one_job(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chitram_core.thumbnailer as module

    calls = 0
    real = module.render_thumbnail_async

    async def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        await anyio.sleep(0.2)
        return await real(*args, **kwargs)

    monkeypatch.setattr(module, "render_thumbnail_async", counting)
    image = await chitram.images.upload(jpeg((1, 2, 3)), filename="a.jpg", owner=user)
    results = []

    async def ask() -> None:
        results.append(await chitram.images.thumbnail(image.id))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(ask)
    assert calls == 1
    assert len({t.key for t in results}) == 1


async def test_identical_images_share_a_thumbnail_deleted_with_the_last(
    chitram: Chitram, user: Principal
) -> None:
    data = jpeg((9, 99, 199))
    a = await chitram.images.upload(data, filename="a.jpg", owner=user)
    b = await chitram.images.upload(data, filename="b.jpg", owner=user)
    ta, tb = await chitram.images.thumbnail(a.id), await chitram.images.thumbnail(b.id)
    assert ta.key == tb.key
    await chitram.images.delete(a.id, principal=user)
    assert await chitram.storage.exists(ta.key)
    await chitram.images.delete(b.id, principal=user)
    assert not await chitram.storage.exists(ta.key)
    assert await statuses(chitram) == {}


async def test_storage_failures_are_retried_then_give_up_with_a_reason(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chitram_core.thumbnailer as module

    monkeypatch.setattr(module, "BASE_BACKOFF", 0.0)
    image = await chitram.images.upload(jpeg((5, 5, 5)), filename="a.jpg", owner=user)
    real_write = chitram.storage.write

    async def failing_write(key, chunks):  # type: ignore[no-untyped-def]
        if key.startswith("thumbnails/"):
            raise OSError("bucket unavailable")
        return await real_write(key, chunks)

    monkeypatch.setattr(chitram.storage, "write", failing_write)
    for _ in range(module.MAX_ATTEMPTS):
        await chitram.thumbnails.run_pending()
    async with chitram.database.connect() as conn:
        row = (await conn.execute(select(thumbnails))).mappings().one()
    assert row["status"] == "stalled" and "bucket unavailable" in row["error"]
    got = await chitram.images.get(image.id)
    assert not got.thumbnail_ready and got.thumbnail_error
    monkeypatch.setattr(chitram.storage, "write", real_write)
    # An explicit request tries again even after giving up, and succeeds now.
    thumb = await chitram.images.thumbnail(image.id)
    assert thumb.size > 0


async def test_a_definite_failure_says_why(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chitram_core.thumbnailer as module

    async def undecodable(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise InvalidImage("decoding took longer than 15 s")

    monkeypatch.setattr(module, "render_thumbnail_async", undecodable)
    image = await chitram.images.upload(jpeg((7, 7, 7)), filename="a.jpg", owner=user)
    with pytest.raises(InvalidImage):
        await chitram.images.thumbnail(image.id)
    got = await chitram.images.get(image.id)
    assert got.thumbnail_error and "longer than" in got.thumbnail_error


async def test_closing_with_jobs_in_flight_neither_hangs_nor_loses_them(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory()
    with anyio.fail_after(60):
        async with Chitram(settings) as chitram:
            session = await chitram.auth.register("close@example.com", "pass word 4 tests")
            owner = await chitram.auth.authenticate(session.access_token)
            for i in range(4):
                await chitram.images.upload(
                    jpeg((i, 50, 50), (1600, 1200)), filename="x.jpg", owner=owner
                )
        async with Chitram(settings, background=False) as again:
            await again.thumbnails.run_pending()
            assert set((await statuses(again)).values()) == {"ready"}


async def test_the_sweep_retries_stalled_jobs_when_storage_is_back(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chitram_core.thumbnailer as module

    monkeypatch.setattr(module, "BASE_BACKOFF", 0.0)
    await chitram.images.upload(jpeg((6, 6, 6)), filename="a.jpg", owner=user)
    real_write = chitram.storage.write

    async def failing_write(key, chunks):  # type: ignore[no-untyped-def]
        raise OSError("bucket unavailable")

    monkeypatch.setattr(chitram.storage, "write", failing_write)
    for _ in range(module.MAX_ATTEMPTS):
        assert await chitram.thumbnails.run_pending() == 0
    assert set((await statuses(chitram)).values()) == {"stalled"}
    monkeypatch.setattr(chitram.storage, "write", real_write)
    assert await chitram.thumbnails.run_pending() == 1
    assert set((await statuses(chitram)).values()) == {"ready"}
