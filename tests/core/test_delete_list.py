"""Delete rules (v1 order), keyset listing, storage failures, the sweep and health."""

from __future__ import annotations

import io
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from sqlalchemy import func, select

from chitram_core import Chitram, collector
from chitram_core.db.database import DatabaseUnavailable
from chitram_core.db.tables import blobs, images, pending_deletions
from chitram_core.errors import (
    DeleteTokenRequired,
    Forbidden,
    ImageNotFound,
    InvalidDeleteToken,
    ValidationError,
)
from chitram_core.models import Principal
from chitram_core.storage import blob_key

pytestmark = pytest.mark.anyio


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (8, 8), (seed % 256, (seed // 256) % 256, 7)).save(buf, "PNG")
    return buf.getvalue()


async def test_unknown_and_malformed_ids_are_not_found(chitram: Chitram, user: Principal) -> None:
    for image_id in (str(uuid.uuid4()), "not-a-uuid", "../../etc/passwd", ""):
        with pytest.raises(ImageNotFound):
            await chitram.images.get(image_id)
        with pytest.raises(ImageNotFound):
            await chitram.images.delete(image_id, principal=user)


async def test_owner_deletes(chitram: Chitram, user: Principal) -> None:
    image = await chitram.images.upload(png(1), filename="a.png", owner=user)
    await chitram.images.delete(image.id, principal=user)
    with pytest.raises(ImageNotFound):
        await chitram.images.get(image.id)


async def test_someone_elses_image_is_forbidden(
    chitram: Chitram, user: Principal, other_user: Principal
) -> None:
    image = await chitram.images.upload(png(2), filename="a.png", owner=user)
    with pytest.raises(Forbidden) as info:
        await chitram.images.delete(image.id, principal=other_user)
    assert info.value.code == "FORBIDDEN"
    with pytest.raises(Forbidden):
        await chitram.images.delete(image.id, delete_token="guess")
    assert (await chitram.images.get(image.id)).id == image.id


async def test_anonymous_image_delete_token_rules(chitram: Chitram, user: Principal) -> None:
    image = await chitram.images.upload(png(3), filename="anon.png")
    assert image.delete_token
    with pytest.raises(DeleteTokenRequired):
        await chitram.images.delete(image.id)
    with pytest.raises(DeleteTokenRequired):
        await chitram.images.delete(image.id, principal=user)
    with pytest.raises(InvalidDeleteToken):
        await chitram.images.delete(image.id, delete_token="wrong")
    await chitram.images.delete(image.id, delete_token=image.delete_token)
    with pytest.raises(ImageNotFound):
        await chitram.images.delete(image.id, delete_token=image.delete_token)


async def test_delete_token_is_stored_only_as_a_hash(chitram: Chitram) -> None:
    image = await chitram.images.upload(png(4), filename="anon.png")
    async with chitram.database.connect() as conn:
        stored = (
            await conn.execute(select(images.c.delete_token_hash).where(images.c.id == image.id))
        ).scalar_one()
    assert image.delete_token is not None and stored != image.delete_token
    assert (await chitram.images.get(image.id)).delete_token is None


async def test_list_validates_limit_and_cursor(chitram: Chitram, user: Principal) -> None:
    for limit in (0, 101, -1):
        with pytest.raises(ValidationError):
            await chitram.images.list(user, limit=limit)
    for cursor in ("garbage", "e30", "W10"):
        with pytest.raises(ValidationError):
            await chitram.images.list(user, cursor=cursor)


async def test_list_shows_only_the_owners_images_newest_first(
    chitram: Chitram, user: Principal, other_user: Principal
) -> None:
    mine = [
        await chitram.images.upload(png(10 + i), filename=f"{i}.png", owner=user) for i in range(3)
    ]
    await chitram.images.upload(png(99), filename="theirs.png", owner=other_user)
    page = await chitram.images.list(user, limit=10)
    assert [i.id for i in page.items] == [i.id for i in reversed(mine)]
    assert page.next_cursor is None


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    initial=st.integers(0, 12),
    limit=st.integers(1, 5),
    inserts=st.lists(st.integers(0, 3), max_size=5),
)
async def test_cursor_pagination_never_skips_or_repeats(
    chitram: Chitram, initial: int, limit: int, inserts: list[int]
) -> None:
    session = await chitram.auth.register(
        f"p-{uuid.uuid4().hex[:10]}@example.com", "pass word 4 tests"
    )
    owner = await chitram.auth.authenticate(session.access_token)
    seed = uuid.uuid4().int % 60000
    existing = [
        (await chitram.images.upload(png(seed + i), filename="x.png", owner=owner)).id
        for i in range(initial)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await chitram.images.list(owner, limit=limit, cursor=cursor)
        seen.extend(i.id for i in page.items)
        if pages < len(inserts):
            for j in range(inserts[pages]):  # new uploads between pages land before the cursor
                await chitram.images.upload(
                    png(seed + 500 + pages * 10 + j), filename="n.png", owner=owner
                )
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert seen == list(reversed(existing))


async def test_storage_failure_on_delete_still_deletes_and_queues(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = await chitram.images.upload(png(5), filename="a.png", owner=user)

    async def broken_delete(key: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(chitram.storage, "delete", broken_delete)
    await chitram.images.delete(image.id, principal=user)
    with pytest.raises(ImageNotFound):
        await chitram.images.get(image.id)
    async with chitram.database.connect() as conn:
        queued = [r[0] for r in await conn.execute(select(pending_deletions.c.storage_key))]
    assert blob_key(image.sha256) in queued
    assert await chitram.storage.exists(blob_key(image.sha256))
    monkeypatch.undo()
    report = await chitram.sweep()
    assert report.pending_left == 0
    assert not await chitram.storage.exists(blob_key(image.sha256))


async def test_a_database_outage_after_the_delete_commits_still_answers_deleted(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row is gone once the delete commits; an outage while its bytes are being removed
    must not turn that into a 503 (the caller would keep an image that no longer exists)."""
    image = await chitram.images.upload(png(9), filename="a.png", owner=user)

    async def database_gone(*args: object) -> bool:
        raise DatabaseUnavailable("the connection was terminated")

    monkeypatch.setattr(collector.deletions, "lock", database_gone)
    await chitram.images.delete(image.id, principal=user)
    monkeypatch.undo()
    with pytest.raises(ImageNotFound):
        await chitram.images.get(image.id)
    async with chitram.database.connect() as conn:
        queued = [r[0] for r in await conn.execute(select(pending_deletions.c.storage_key))]
    assert blob_key(image.sha256) in queued
    report = await chitram.sweep()
    assert report.pending_left == 0
    assert not await chitram.storage.exists(blob_key(image.sha256))


async def test_sweep_removes_bytes_no_row_references(chitram: Chitram, user: Principal) -> None:
    kept = await chitram.images.upload(png(6), filename="kept.png", owner=user)

    async def payload():  # type: ignore[no-untyped-def]
        yield b"orphan bytes"

    await chitram.storage.write("blobs/aa/bb/" + "ab" * 32, payload())
    await chitram.storage.write("tmp/crashed-upload", payload())
    young = await chitram.sweep(older_than=3600)
    assert young.orphans_removed == 0
    report = await chitram.sweep(older_than=0)
    assert report.orphans_removed == 2
    keys = [k async for k in chitram.storage.keys("")]
    assert keys == [blob_key(kept.sha256)] or set(keys) >= {blob_key(kept.sha256)}
    assert not any(k.startswith("tmp/") for k in keys)
    assert await chitram.images.get(kept.id)


async def test_re_upload_after_delete_revives_queued_bytes(
    chitram: Chitram, user: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png(7)
    image = await chitram.images.upload(data, filename="a.png", owner=user)

    async def broken_delete(key: str) -> None:
        raise OSError("flaky")

    monkeypatch.setattr(chitram.storage, "delete", broken_delete)
    await chitram.images.delete(image.id, principal=user)
    monkeypatch.undo()
    again = await chitram.images.upload(data, filename="b.png", owner=user)
    await chitram.sweep(older_than=0)
    chunks = [c async for c in chitram.images.read(again.id)]
    assert b"".join(chunks) == data
    async with chitram.database.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(blobs))).scalar_one() == 1


async def test_health_probes_database_and_storage(chitram: Chitram) -> None:
    report = await chitram.health()
    assert report.status == "healthy"
    assert report.database == "connected" and report.storage == "connected"
    assert report.checks["database"].latency_ms is not None
    assert report.checks["storage"].latency_ms is not None
    assert any(name.startswith("auth:") for name in report.checks)


async def test_health_is_unhealthy_when_the_database_is_gone(settings_factory) -> None:  # type: ignore[no-untyped-def]
    from chitram_core.db import Database

    async with Chitram(settings_factory(), background=False) as chitram:
        real = chitram.database
        chitram.database = Database("postgresql+asyncpg://nobody@127.0.0.1:9/none")
        try:
            report = await chitram.health()
        finally:
            await chitram.database.dispose()
            chitram.database = real
        assert report.status == "unhealthy"
        assert report.database == "disconnected"
        assert report.checks["database"].status == "unhealthy"
        assert report.checks["storage"].status == "healthy"
