"""Resumable uploads through the SDK (``chitram.uploads``): any split of the bytes makes the
same image, offsets move only with stored chunks, refusals leave nothing behind."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from sqlalchemy import func, select, update

from chitram_core import Chitram
from chitram_core.db.tables import resumable_uploads
from chitram_core.errors import (
    ChecksumMismatch,
    FileTooLarge,
    InvalidFileFormat,
    InvalidImage,
    InvalidRequest,
    OffsetMismatch,
    QuotaExceeded,
    ServiceUnavailable,
    UploadNotFound,
)
from chitram_core.models import Principal
from chitram_core.resumable import Checksum

pytestmark = pytest.mark.anyio


def noisy_png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """A PNG that does not compress to nothing (so that chunks have room to fall)."""
    pixels = random.Random(seed).randbytes(size[0] * size[1] * 3)
    image = PILImage.frombytes("RGB", size, pixels)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def read_all(chitram: Chitram, image_id: str) -> bytes:
    return b"".join([chunk async for chunk in chitram.images.read(image_id)])


async def part_keys(chitram: Chitram) -> list[str]:
    return [key async for key in chitram.storage.keys("resumable/")]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


async def send(chitram: Chitram, owner: Principal | None, pieces: list[bytes]) -> str | None:
    total = sum(len(p) for p in pieces)
    upload = await chitram.uploads.create(total, owner=owner, filename="split.png")
    for piece in pieces:
        upload = await chitram.uploads.append(upload.id, upload.offset, piece, owner=owner)
    return upload.image_id


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 30_000), max_size=8))
async def test_any_split_of_the_bytes_makes_the_same_image(
    chitram: Chitram, user: Principal, seed: int, cuts: list[int]
) -> None:
    original = noisy_png(seed)
    image_id = await send(chitram, user, split(original, cuts))
    assert image_id is not None
    assert await read_all(chitram, image_id) == original
    assert await part_keys(chitram) == []  # parts go once the image is made


async def test_finish_returns_the_image_and_status_tells_its_id(
    chitram: Chitram, user: Principal
) -> None:
    data = noisy_png(1)
    upload = await chitram.uploads.create(len(data), owner=user, filename="cat.png")
    with pytest.raises(InvalidRequest):
        await chitram.uploads.finish(upload.id, owner=user)
    half = len(data) // 2
    upload = await chitram.uploads.append(upload.id, 0, data[:half], owner=user)
    assert (upload.offset, upload.image_id) == (half, None)
    assert (await chitram.uploads.status(upload.id, owner=user)).offset == half
    done = await chitram.uploads.append(upload.id, half, data[half:], owner=user)
    assert done.finished and done.offset == len(data)
    image = await chitram.uploads.finish(upload.id, owner=user)
    assert image.id == done.image_id and image.filename == "cat.png"
    assert image.owner_id == user.user_id
    assert (await chitram.uploads.status(upload.id, owner=user)).image_id == image.id


async def test_the_first_chunk_can_come_with_creation(chitram: Chitram, user: Principal) -> None:
    data = noisy_png(2)
    upload = await chitram.uploads.create(len(data), owner=user, first_chunk=data[:100])
    assert upload.offset == 100


async def test_a_chunk_at_the_wrong_offset_is_refused_and_the_offset_stays(
    chitram: Chitram, user: Principal
) -> None:
    data = noisy_png(3)
    upload = await chitram.uploads.create(len(data), owner=user, first_chunk=data[:50])
    with pytest.raises(OffsetMismatch) as caught:
        await chitram.uploads.append(upload.id, 10, data[10:60], owner=user)
    assert caught.value.details["offset"] == 50
    assert (await chitram.uploads.status(upload.id, owner=user)).offset == 50


async def test_a_checksum_mismatch_discards_the_chunk(chitram: Chitram, user: Principal) -> None:
    data = noisy_png(4)
    upload = await chitram.uploads.create(len(data), owner=user)
    wrong = Checksum("sha1", hashlib.sha1(b"something else").digest())
    with pytest.raises(ChecksumMismatch):
        await chitram.uploads.append(upload.id, 0, data[:200], owner=user, checksum=wrong)
    assert (await chitram.uploads.status(upload.id, owner=user)).offset == 0
    assert await part_keys(chitram) == []
    right = Checksum("sha256", hashlib.sha256(data[:200]).digest())
    upload = await chitram.uploads.append(upload.id, 0, data[:200], owner=user, checksum=right)
    assert upload.offset == 200


async def test_checksum_headers_parse_and_refuse() -> None:
    digest = hashlib.sha1(b"x").digest()
    assert Checksum.parse("sha1 " + base64.b64encode(digest).decode()).digest == digest
    for bad in ("md5 AAAA", "sha1 not-base64!", "sha256 " + base64.b64encode(digest).decode()):
        with pytest.raises(InvalidRequest):
            Checksum.parse(bad)


async def test_bytes_past_the_declared_length_are_refused(
    chitram: Chitram, user: Principal
) -> None:
    data = noisy_png(5)
    upload = await chitram.uploads.create(len(data) - 1, owner=user)
    with pytest.raises(FileTooLarge):
        await chitram.uploads.append(upload.id, 0, data, owner=user)
    assert (await chitram.uploads.status(upload.id, owner=user)).offset == 0


async def test_a_length_over_the_limit_is_refused_at_creation(
    chitram: Chitram, user: Principal
) -> None:
    with pytest.raises(FileTooLarge):
        await chitram.uploads.create(chitram.settings.max_resumable_bytes + 1, owner=user)
    with pytest.raises(InvalidRequest):
        await chitram.uploads.create(0, owner=user)


async def test_a_length_over_the_remaining_quota_is_refused_at_creation(
    chitram: Chitram, user: Principal
) -> None:
    kept = await chitram.images.upload(noisy_png(40), owner=user)
    await chitram.users.set_quota(user.user_id, bytes=kept.file_size + 500)
    with pytest.raises(QuotaExceeded):
        await chitram.uploads.create(501, owner=user)
    with pytest.raises(QuotaExceeded):  # with its first chunk: that chunk is not stored
        await chitram.uploads.create(600, owner=user, first_chunk=noisy_png(41)[:100])
    assert await part_keys(chitram) == []
    async with chitram.database.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(resumable_uploads))).scalar()
    assert rows == 0
    fits = await chitram.uploads.create(500, owner=user)
    assert fits.offset == 0
    await chitram.users.set_quota(user.user_id, images=1)
    with pytest.raises(QuotaExceeded):  # one more image would pass the image count
        await chitram.uploads.create(10, owner=user)


async def test_uploads_that_each_fit_but_not_together_are_held_to_the_quota_at_the_finish(
    chitram: Chitram, user: Principal
) -> None:
    """Creation checks what is left; two uploads created then can still pass it together, so
    the finish (the image row's transaction) refuses the second, and keeps none of its bytes."""
    await chitram.users.set_quota(user.user_id, images=1)
    first, second = noisy_png(50), noisy_png(51)
    a = await chitram.uploads.create(len(first), owner=user)
    b = await chitram.uploads.create(len(second), owner=user)
    done = await chitram.uploads.append(a.id, 0, first, owner=user)
    assert done.image_id is not None
    with pytest.raises(QuotaExceeded):
        await chitram.uploads.append(b.id, 0, second, owner=user)
    assert (await chitram.users.usage(user.user_id)).images == 1
    assert [i.id for i in (await chitram.images.list(user)).items] == [done.image_id]
    blobs = [key async for key in chitram.storage.keys("blobs/")]
    assert len(blobs) == 1 and hashlib.sha256(second).hexdigest() not in blobs[0]
    assert [key async for key in chitram.storage.keys("tmp/")] == []
    assert await part_keys(chitram) == []  # the refused upload ended with its parts
    with pytest.raises(UploadNotFound):
        await chitram.uploads.status(b.id, owner=user)


async def test_a_file_that_is_no_image_is_refused_from_its_first_chunk(
    chitram: Chitram, user: Principal
) -> None:
    upload = await chitram.uploads.create(10_000, owner=user)
    with pytest.raises(InvalidFileFormat):
        await chitram.uploads.append(upload.id, 0, b"%PDF-1.7 not an image at all", owner=user)
    with pytest.raises(UploadNotFound):
        await chitram.uploads.status(upload.id, owner=user)
    assert await part_keys(chitram) == []


async def test_a_broken_image_is_refused_at_the_last_byte_and_nothing_stays(
    chitram: Chitram, user: Principal
) -> None:
    data = noisy_png(6)
    broken = data[:200] + bytes(len(data) - 200)
    upload = await chitram.uploads.create(len(broken), owner=user, first_chunk=broken[:300])
    with pytest.raises((InvalidImage, InvalidRequest)):
        await chitram.uploads.append(upload.id, 300, broken[300:], owner=user)
    with pytest.raises(UploadNotFound):
        await chitram.uploads.status(upload.id, owner=user)
    assert await part_keys(chitram) == []


async def test_only_the_creator_sees_an_upload(
    chitram: Chitram, user: Principal, other_user: Principal
) -> None:
    upload = await chitram.uploads.create(1000, owner=user)
    for who in (other_user, None):
        with pytest.raises(UploadNotFound):
            await chitram.uploads.status(upload.id, owner=who)
        with pytest.raises(UploadNotFound):
            await chitram.uploads.append(upload.id, 0, b"\x89PNG", owner=who)
        with pytest.raises(UploadNotFound):
            await chitram.uploads.cancel(upload.id, owner=who)
    with pytest.raises(UploadNotFound):
        await chitram.uploads.status("not-an-id", owner=user)


async def test_cancel_removes_the_partial_bytes(chitram: Chitram, user: Principal) -> None:
    data = noisy_png(7)
    upload = await chitram.uploads.create(len(data), owner=user, first_chunk=data[:500])
    assert len(await part_keys(chitram)) == 1
    await chitram.uploads.cancel(upload.id, owner=user)
    assert await part_keys(chitram) == []
    with pytest.raises(UploadNotFound):
        await chitram.uploads.status(upload.id, owner=user)


async def test_a_new_instance_takes_the_next_chunk(chitram: Chitram, user: Principal) -> None:
    """Nothing about an upload lives in the process: a second Chitram over the same database
    and store (another process, or this one restarted) continues it."""
    data = noisy_png(8)
    upload = await chitram.uploads.create(len(data), owner=user, first_chunk=data[:1000])
    async with Chitram(chitram.settings, background=False) as again:
        state = await again.uploads.status(upload.id, owner=user)
        done = await again.uploads.append(upload.id, state.offset, data[1000:], owner=user)
        assert done.image_id is not None
        assert await read_all(again, done.image_id) == data


async def test_concurrent_chunks_on_one_upload_one_wins_the_other_gets_409(
    chitram: Chitram, user: Principal
) -> None:
    data = noisy_png(9)
    upload = await chitram.uploads.create(len(data), owner=user)
    gate = anyio.Event()
    results: list[object] = []

    async def slow_body() -> AsyncIterator[bytes]:
        yield data[:100]
        await gate.wait()
        yield data[100:200]

    async def first() -> None:
        results.append(await chitram.uploads.append(upload.id, 0, slow_body(), owner=user))

    async def second() -> None:
        try:
            await chitram.uploads.append(upload.id, 0, data[:200], owner=user)
        except OffsetMismatch as exc:
            results.append(exc)
        gate.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(second)
    assert sum(isinstance(r, OffsetMismatch) for r in results) == 1
    assert (await chitram.uploads.status(upload.id, owner=user)).offset == 200
    assert len(await part_keys(chitram)) == 1


async def test_two_instances_racing_on_one_offset_move_it_once(
    chitram: Chitram, user: Principal
) -> None:
    """Across processes the offset's compare-and-set decides: the loser's chunk is discarded."""
    data = noisy_png(10)
    upload = await chitram.uploads.create(len(data), owner=user)
    gate = anyio.Event()
    outcomes: list[object] = []

    async def held_body() -> AsyncIterator[bytes]:
        yield data[:100]
        await gate.wait()

    async with Chitram(chitram.settings, background=False) as other:

        async def slow() -> None:
            try:
                outcomes.append(await chitram.uploads.append(upload.id, 0, held_body(), owner=user))
            except OffsetMismatch as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            await anyio.wait_all_tasks_blocked()
            outcomes.append(await other.uploads.append(upload.id, 0, data[:150], owner=user))
            gate.set()
    assert sum(isinstance(o, OffsetMismatch) for o in outcomes) == 1
    assert (await chitram.uploads.status(upload.id, owner=user)).offset == 150
    assert len(await part_keys(chitram)) == 1


async def test_the_sweep_removes_expired_uploads_and_their_bytes(
    chitram: Chitram, user: Principal
) -> None:
    data = noisy_png(11)
    old = await chitram.uploads.create(len(data), owner=user, first_chunk=data[:500])
    fresh = await chitram.uploads.create(len(data), owner=user, first_chunk=data[:500])
    async with chitram.database.transaction() as conn:
        await conn.execute(
            update(resumable_uploads)
            .where(resumable_uploads.c.id == old.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with pytest.raises(UploadNotFound):
        await chitram.uploads.status(old.id, owner=user)
    report = await chitram.sweep(older_than=0)
    assert report.uploads_expired == 1
    assert [k.split("/")[1] for k in await part_keys(chitram)] == [fresh.id]
    assert (await chitram.uploads.status(fresh.id, owner=user)).offset == 500


async def test_the_sweep_removes_a_chunk_no_row_names(chitram: Chitram, user: Principal) -> None:
    """A request cut off between its write and its record leaves an object no part names."""

    async def one() -> AsyncIterator[bytes]:
        yield b"stray"

    await chitram.storage.write("resumable/0123456789abcdef0123456789abcdef/x", one())
    await chitram.sweep(older_than=0)
    assert await part_keys(chitram) == []


async def test_the_finish_holds_an_upload_slot_and_a_busy_server_keeps_the_upload(
    chitram: Chitram, user: Principal
) -> None:
    """The last chunk's image work takes one of the process's upload slots, as a multipart
    upload's does; when none is free (503) the upload stays as it was, to send again."""
    busy = attrs.evolve(chitram.settings, upload_concurrency=1, upload_queue=0)
    data = noisy_png(12)
    async with Chitram(busy, background=False) as small:
        upload = await small.uploads.create(len(data), owner=user, first_chunk=data[:700])
        async with small.upload_slots.acquire():
            with pytest.raises(ServiceUnavailable):
                await small.uploads.append(upload.id, 700, data[700:], owner=user)
        state = await small.uploads.status(upload.id, owner=user)
        assert (state.offset, state.image_id) == (700, None)
        assert len(await part_keys(small)) == 1
        done = await small.uploads.append(upload.id, 700, data[700:], owner=user)
        assert done.image_id is not None
        assert await read_all(small, done.image_id) == data


async def test_a_hostile_filename_is_cleaned_at_creation(chitram: Chitram, user: Principal) -> None:
    data = noisy_png(13)
    name = "../../" + "\x00evil" + "x" * 5000 + ".png"
    upload = await chitram.uploads.create(len(data), owner=user, filename=name, first_chunk=data)
    assert upload.filename is not None and len(upload.filename) <= 255
    assert "/" not in upload.filename and "\x00" not in upload.filename
    image = await chitram.uploads.finish(upload.id, owner=user)
    assert image.filename.endswith(".png") and "\x00" not in image.filename
