"""Quotas at the SDK level: defaults, a user's own limits, concurrency and the accounting."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import anyio
import pytest
from conftest import make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from sqlalchemy import func, select

from chitram_core import Chitram
from chitram_core.db.tables import images, jobs
from chitram_core.errors import QuotaExceeded, UserNotFound, ValidationError
from chitram_core.models import Principal, Usage

pytestmark = pytest.mark.anyio


def png(n: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A distinct PNG per ``n``."""
    buf = io.BytesIO()
    PILImage.new("RGB", size, (n % 256, (n * 7) % 256, (n * 13) % 256)).save(buf, "PNG")
    return buf.getvalue()


async def image_rows(chitram: Chitram) -> int:
    async with chitram.database.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(images))).scalar_one())


async def job_rows(chitram: Chitram) -> int:
    async with chitram.database.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(jobs))).scalar_one())


async def stored(chitram: Chitram) -> list[str]:
    return [k async for k in chitram.storage.keys("")]


async def test_a_new_user_has_no_usage_and_the_default_quota(
    chitram: Chitram, user: Principal
) -> None:
    assert await chitram.users.usage(user.user_id) == Usage(bytes=0, images=0)


async def test_twenty_concurrent_uploads_at_a_quota_of_five_store_exactly_five(
    chitram: Chitram, user: Principal
) -> None:
    await chitram.users.set_quota(user.user_id, images=5)
    accepted: list[str] = []
    refused: list[QuotaExceeded] = []

    async def one(n: int) -> None:
        try:
            image = await chitram.images.upload(png(n), filename=f"{n}.png", owner=user)
        except QuotaExceeded as exc:
            refused.append(exc)
        else:
            accepted.append(image.id)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(one, n)
    assert len(accepted) == 5 and len(refused) == 15
    usage = await chitram.users.usage(user.user_id)
    assert (usage.images, usage.quota_images) == (5, 5)
    assert await image_rows(chitram) == 5
    assert not [k for k in await stored(chitram) if k.startswith("tmp/")]
    page = await chitram.images.list(user, limit=100)
    assert sorted(i.id for i in page.items) == sorted(accepted)


async def test_a_refused_upload_keeps_no_bytes_row_or_job(
    chitram: Chitram, user: Principal
) -> None:
    first = await chitram.images.upload(png(1), owner=user)
    await chitram.users.set_quota(user.user_id, bytes=first.file_size + 10)
    keys, jobs_before = await stored(chitram), await job_rows(chitram)
    with pytest.raises(QuotaExceeded) as raised:
        await chitram.images.upload(png(2, (64, 64)), owner=user)
    assert raised.value.status == 413 and raised.value.code == "QUOTA_EXCEEDED"
    assert await stored(chitram) == keys
    assert await image_rows(chitram) == 1
    assert await job_rows(chitram) == jobs_before


async def test_a_deduplicated_image_counts_its_own_size(
    chitram: Chitram, user: Principal, other_user: Principal
) -> None:
    data = png(3)
    a = await chitram.images.upload(data, owner=user)
    await chitram.images.upload(data, owner=user)
    await chitram.images.upload(data, owner=other_user)
    assert await chitram.users.usage(user.user_id) == Usage(bytes=2 * a.file_size, images=2)
    assert await chitram.users.usage(other_user.user_id) == Usage(bytes=a.file_size, images=1)
    await chitram.users.set_quota(user.user_id, bytes=2 * a.file_size)
    with pytest.raises(QuotaExceeded):  # the bytes are stored once, but each image counts
        await chitram.images.upload(data, owner=user)


async def test_deleting_frees_quota(chitram: Chitram, user: Principal) -> None:
    await chitram.users.set_quota(user.user_id, images=1)
    image = await chitram.images.upload(png(4), owner=user)
    with pytest.raises(QuotaExceeded):
        await chitram.images.upload(png(5), owner=user)
    await chitram.images.delete(image.id, principal=user)
    assert (await chitram.users.usage(user.user_id)).images == 0
    await chitram.images.upload(png(5), owner=user)


async def test_a_declared_length_over_the_quota_is_refused_before_reading(
    chitram: Chitram, user: Principal
) -> None:
    await chitram.users.set_quota(user.user_id, bytes=100)
    with pytest.raises(QuotaExceeded):
        await chitram.users.check_declared(user.user_id, 101)
    await chitram.users.check_declared(user.user_id, 100)
    await chitram.users.check_declared(None, 10**12)  # anonymous uploads have no quota

    read: list[bytes] = []

    class Body:  # a binary file that records whether anything read it
        def read(self, n: int = -1) -> bytes:
            read.append(b"x")
            return b""

    big = png(6, (200, 200))
    with pytest.raises(QuotaExceeded):
        await chitram.images.upload(big, owner=user)  # bytes: length known up front
    await chitram.users.set_quota(user.user_id, images=0)
    with pytest.raises(QuotaExceeded):  # one more image: refused before the file is read
        await chitram.images.upload(Body(), owner=user)  # type: ignore[arg-type]
    assert read == []


async def test_own_limits_override_the_defaults_and_clear_back(
    tmp_path: Path, database_url: str
) -> None:

    settings = make_settings(
        tmp_path, database_url=database_url, auto_migrate=True, quota_images=1, quota_bytes=None
    )
    async with Chitram(settings, background=False) as chitram:
        session = await chitram.auth.register("quota@example.com", "correct horse")
        user = await chitram.auth.authenticate(session.access_token)
        assert (await chitram.users.usage(user.user_id)).quota_images == 1
        await chitram.images.upload(png(7), owner=user)
        with pytest.raises(QuotaExceeded):
            await chitram.images.upload(png(8), owner=user)
        usage = await chitram.admin.set_quota("QUOTA@example.com", images=3, bytes=10**6)
        assert (usage.quota_images, usage.quota_bytes, usage.images) == (3, 10**6, 1)
        await chitram.images.upload(png(8), owner=user)
        cleared = await chitram.admin.set_quota(user.user_id)
        assert (cleared.quota_images, cleared.quota_bytes) == (1, None)
        assert await chitram.admin.usage(user.user_id) == cleared
        with pytest.raises(UserNotFound):
            await chitram.admin.set_quota("nobody@example.com", images=1)
        with pytest.raises(ValidationError):
            await chitram.users.set_quota(user.user_id, bytes=-1)


# The accounting, as a property: any sequence of uploads (some identical, so deduplicated) and
# deletes under any quota leaves usage equal to the sum of the user's images, and an upload is
# refused exactly when it would pass a limit.

operations = st.lists(
    st.one_of(
        st.tuples(st.just("upload"), st.integers(0, 3)),
        st.tuples(st.just("delete"), st.integers(0, 10)),
    ),
    max_size=10,
)
SAMPLES = [png(n, (8 + 8 * n, 8 + 4 * n)) for n in range(4)]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    quota_bytes=st.one_of(st.none(), st.integers(0, 3 * max(map(len, SAMPLES)))),
    quota_images=st.one_of(st.none(), st.integers(0, 5)),
)
def test_usage_is_always_the_sum_of_the_users_images(
    ops: list[tuple[str, int]], quota_bytes: int | None, quota_images: int | None
) -> None:

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            settings = make_settings(Path(tmp), quota_bytes=quota_bytes)
            async with Chitram(settings, background=False) as chitram:
                session = await chitram.auth.register("prop@example.com", "correct horse")
                user = await chitram.auth.authenticate(session.access_token)
                await chitram.users.set_quota(user.user_id, images=quota_images)
                kept: list[tuple[str, int]] = []
                for op, n in ops:
                    if op == "delete":
                        if kept:
                            image_id, _ = kept.pop(n % len(kept))
                            await chitram.images.delete(image_id, principal=user)
                    else:
                        used = sum(size for _, size in kept)
                        fits = (quota_bytes is None or used + len(SAMPLES[n]) <= quota_bytes) and (
                            quota_images is None or len(kept) + 1 <= quota_images
                        )
                        try:
                            image = await chitram.images.upload(SAMPLES[n], owner=user)
                        except QuotaExceeded:
                            assert not fits
                        else:
                            assert fits
                            kept.append((image.id, image.file_size))
                    usage = await chitram.users.usage(user.user_id)
                    listed = (await chitram.images.list(user, limit=100)).items
                    assert usage.bytes == sum(i.file_size for i in listed)
                    assert usage.bytes == sum(size for _, size in kept)
                    assert usage.images == len(listed) == len(kept)

    anyio.run(main)
