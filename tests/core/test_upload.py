"""Upload, read and dedup at the SDK level; bad input leaves nothing behind."""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from sqlalchemy import func, select

from chitram_core import Chitram
from chitram_core.db.tables import blobs, images, thumbnails
from chitram_core.errors import (
    FileTooLarge,
    ImageTooLarge,
    InvalidFileFormat,
    InvalidImage,
    InvalidRequest,
)
from chitram_core.models import Principal
from chitram_core.testing import strategies as ist

pytestmark = pytest.mark.anyio


def png_bytes(
    color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 30)
) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


async def aiter_chunks(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def read_all(
    chitram: Chitram, image_id: str, start: int = 0, end: int | None = None
) -> bytes:
    return b"".join([c async for c in chitram.images.read(image_id, start, end)])


async def stored_keys(chitram: Chitram) -> list[str]:
    return [k async for k in chitram.storage.keys("")]


async def row_counts(chitram: Chitram) -> tuple[int, int]:
    async with chitram.database.connect() as conn:
        n_images = (await conn.execute(select(func.count()).select_from(images))).scalar_one()
        n_blobs = (await conn.execute(select(func.count()).select_from(blobs))).scalar_one()
    return n_images, n_blobs


async def test_upload_then_read_round_trips(chitram: Chitram, user: Principal) -> None:
    data = png_bytes()
    image = await chitram.images.upload(data, filename="cat.png", owner=user)
    assert image.content_type == "image/png"
    assert (image.width, image.height) == (40, 30)
    assert image.file_size == len(data)
    assert image.delete_token is None
    assert await read_all(chitram, image.id) == data
    fetched = await chitram.images.get(image.id)
    assert fetched.id == image.id and fetched.sha256 == image.sha256


async def test_format_comes_from_bytes_not_name(chitram: Chitram, user: Principal) -> None:
    image = await chitram.images.upload(png_bytes(), filename="evil.html", owner=user)
    assert image.content_type == "image/png"


async def test_file_object_source(chitram: Chitram, user: Principal) -> None:
    data = png_bytes()
    image = await chitram.images.upload(io.BytesIO(data), filename="f.png", owner=user)
    assert await read_all(chitram, image.id) == data


def cut(data: bytes, cuts: list[int], empties: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    for position in empties:
        chunks.insert(min(position, len(chunks)), b"")
    return chunks


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    shade=st.integers(0, 255),
    cuts=st.lists(st.integers(0, 400), max_size=20),
    empties=st.lists(st.integers(0, 20), max_size=4),
)
async def test_any_chunking_round_trips(
    chitram: Chitram, user: Principal, shade: int, cuts: list[int], empties: list[int]
) -> None:
    original = png_bytes((shade, 10, 10))
    chunks = cut(original, cuts, empties)
    image = await chitram.images.upload(aiter_chunks(chunks), filename="x.png", owner=user)
    assert await read_all(chitram, image.id) == original


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(start=st.integers(0, 400), length=st.one_of(st.none(), st.integers(0, 400)))
async def test_any_byte_range_reads_back_right(
    chitram: Chitram, user: Principal, start: int, length: int | None
) -> None:
    data = png_bytes((1, 2, 3), (20, 20))
    image = await chitram.images.upload(data, filename="r.png", owner=user)
    start = min(start, len(data))
    end = None if length is None else start + length
    assert await read_all(chitram, image.id, start, end) == data[start:end]


async def test_identical_bytes_are_stored_once(chitram: Chitram, user: Principal) -> None:
    data = png_bytes((9, 9, 9))
    first = await chitram.images.upload(data, filename="a.png", owner=user)
    second = await chitram.images.upload(data, filename="b.png", owner=user)
    assert first.id != second.id and first.sha256 == second.sha256
    assert await row_counts(chitram) == (2, 1)
    blob_keys = [k for k in await stored_keys(chitram) if k.startswith("blobs/")]
    assert len(blob_keys) == 1
    await chitram.images.delete(first.id, principal=user)
    assert await read_all(chitram, second.id) == data
    await chitram.images.delete(second.id, principal=user)
    assert [k for k in await stored_keys(chitram) if k.startswith("blobs/")] == []
    assert await row_counts(chitram) == (0, 0)


def _bad_inputs() -> list[tuple[str, object, type[Exception]]]:
    good = png_bytes()
    return [
        ("empty", b"", InvalidRequest),
        ("only-empty-chunks", [b"", b"", b""], InvalidRequest),
        ("truncated", good[: len(good) // 2], InvalidImage),
        ("wrong-magic", b"\x89PNX\r\n\x1a\n" + good[8:], InvalidFileFormat),
        ("gif-magic-garbage", b"GIF89a" + b"\x01\x00\x01\x00" + b"\xff" * 30, InvalidImage),
        ("text", b"<html><body>hello</body></html>", InvalidFileFormat),
        ("polyglot", ist.polyglot_png(), InvalidImage),
        ("1x100000", ist.png_with_size(1, 100_000), ImageTooLarge),
        ("50000x50000", ist.png_with_size(50_000, 50_000), ImageTooLarge),
        ("jpeg-50000x50000", ist.jpeg_with_size(50_000, 50_000), ImageTooLarge),
        ("png-bomb", ist.png_bomb(20_000, 20_000), ImageTooLarge),
    ]


@pytest.mark.parametrize(
    ("name", "payload", "error"), _bad_inputs(), ids=lambda v: v if isinstance(v, str) else ""
)
async def test_bad_input_gets_its_code_and_leaves_nothing(
    chitram: Chitram, user: Principal, name: str, payload: object, error: type[Exception]
) -> None:
    source = aiter_chunks(payload) if isinstance(payload, list) else payload
    with pytest.raises(error):
        await chitram.images.upload(source, filename=f"{name}.png", owner=user)  # type: ignore[arg-type]
    assert await row_counts(chitram) == (0, 0)
    assert await stored_keys(chitram) == []


async def test_too_large_is_cut_off_while_streaming(chitram: Chitram, user: Principal) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield png_bytes()
        while True:
            pulled += 65536
            yield b"\0" * 65536

    with pytest.raises(FileTooLarge):
        await chitram.images.upload(endless(), filename="big.png", owner=user, max_bytes=1_000_000)
    assert pulled <= 1_000_000 + 65536
    assert await stored_keys(chitram) == []
    assert await row_counts(chitram) == (0, 0)


async def test_zero_length_chunks_are_ignored(chitram: Chitram, user: Principal) -> None:
    data = png_bytes()
    chunks = [b"", data[:3], b"", b"", data[3:50], b"", data[50:], b""]
    image = await chitram.images.upload(aiter_chunks(chunks), filename="z.png", owner=user)
    assert await read_all(chitram, image.id) == data


async def test_upload_makes_its_thumbnail_at_once(chitram: Chitram, user: Principal) -> None:
    image = await chitram.images.upload(png_bytes(), filename="t.png", owner=user)
    assert image.thumbnail_ready
    async with chitram.database.connect() as conn:
        status = (
            await conn.execute(
                select(thumbnails.c.status).where(thumbnails.c.sha256 == image.sha256)
            )
        ).scalar_one()
    assert status == "ready"
    thumb = await chitram.images.thumbnail(image.id)
    assert thumb.content_type == "image/jpeg"
    data = b"".join([c async for c in chitram.images.stream_thumbnail(thumb)])
    with PILImage.open(io.BytesIO(data)) as img:
        assert max(img.size) <= 300
    assert (await chitram.images.get(image.id)).thumbnail_ready
