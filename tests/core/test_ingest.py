"""The ingest pipeline's seams: sources, stages, the one failure rule, the inline engine."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import attrs
import pytest
from sqlalchemy import func, select

from chitram_core import Chitram
from chitram_core.db.tables import images
from chitram_core.engine import InlineEngine
from chitram_core.errors import DecodeTimeout, FileTooLarge, ImageTooLarge, InvalidRequest
from chitram_core.images.formats import ImageFormat
from chitram_core.ingest import Ingest, Upload
from chitram_core.ingest.image_job import ImageJob
from chitram_core.models import Principal
from chitram_core.service import ImageService
from chitram_core.testing.strategies import encode, make_image

pytestmark = pytest.mark.anyio


def jpeg(width: int = 64, height: int = 48) -> bytes:
    return encode(make_image("RGB", width, height), ImageFormat.JPEG)


async def keys(chitram: Chitram, prefix: str) -> list[str]:
    return [key async for key in chitram.storage.keys(prefix)]


async def image_rows(chitram: Chitram) -> int:
    async with chitram.database.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(images))).scalar_one())


@attrs.frozen
class Fetched:
    """A source of another kind (say, bytes fetched from a URL), streamed in small pieces."""

    data: bytes
    filename: str | None = "fetched.jpeg"
    owner: Principal | None = None
    declared_length: int | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        for offset in range(0, len(self.data), 1000):
            yield self.data[offset : offset + 1000]


async def test_any_source_goes_through_the_same_stages(chitram: Chitram, user: Principal) -> None:
    image = await chitram.images.ingest.upload(Fetched(jpeg(), owner=user))
    assert image.owner_id == user.user_id and image.filename == "fetched.jpeg"
    assert image.thumbnail_ready
    assert (await chitram.images.get(image.id)).sha256 == image.sha256
    assert await keys(chitram, "tmp") == []


async def test_a_declared_length_over_the_limit_is_refused_before_anything_is_written(
    chitram: Chitram, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str] = []
    real = chitram.storage.write

    async def write(key: str, chunks: AsyncIterator[bytes]) -> None:
        writes.append(key)
        await real(key, chunks)

    monkeypatch.setattr(chitram.storage, "write", write)
    with pytest.raises(FileTooLarge):
        await chitram.images.upload(jpeg(), max_bytes=100)
    assert writes == []
    # A stream without a declared length is stopped as soon as it passes the limit.
    with pytest.raises(FileTooLarge):
        await chitram.images.ingest.upload(Fetched(jpeg()), max_bytes=100)
    assert len(writes) == 1
    assert await keys(chitram, "tmp") == []


@attrs.frozen
class Refuse:
    """A gate after the image job (where a moderation stage would go)."""

    seen: list[Upload]

    async def run(self, upload: Upload) -> None:
        self.seen.append(upload)
        raise InvalidRequest("refused by the gate")


async def test_a_stage_that_refuses_leaves_no_temporary_object_and_no_row(
    chitram: Chitram, user: Principal
) -> None:
    ingest = chitram.images.ingest
    stages = list(ingest.stages)
    after_job = next(i for i, s in enumerate(stages) if isinstance(s, ImageJob)) + 2
    seen: list[Upload] = []
    gated = Ingest(
        ingest.storage, [*stages[:after_job], Refuse(seen), *stages[after_job:]], ingest.after
    )
    with pytest.raises(InvalidRequest, match="gate"):
        await gated.upload(Fetched(jpeg(), owner=user))
    (upload,) = seen
    assert upload.staged is not None  # the thumbnail had been staged: two temporary objects
    assert len(upload.temporary) == 2
    assert await keys(chitram, "tmp") == [] and await keys(chitram, "blobs") == []
    assert await image_rows(chitram) == 0


async def test_without_an_engine_the_service_runs_the_same_jobs_in_threads(
    chitram: Chitram, user: Principal
) -> None:
    service = ImageService(
        chitram.settings, chitram.database, chitram.storage, thumbnailer=chitram.thumbnails
    )
    assert isinstance(service.engine, InlineEngine)
    image = await service.upload(jpeg(200, 100), filename="t.jpg", owner=user)
    assert image.thumbnail_ready and image.blurhash is not None
    thumb = await service.thumbnail(image.id)
    data = b"".join([c async for c in service.stream_thumbnail(thumb)])
    assert len(data) == thumb.size


async def test_the_inline_engine_keeps_the_engine_s_promises() -> None:
    engine = InlineEngine(memory_budget=1000, decode_timeout=0.05)
    assert await engine.run(sum, [1, 2, 3], memory=10) == 6
    with pytest.raises(ImageTooLarge):
        await engine.run(sum, [1], memory=2000)
    started = time.monotonic()
    with pytest.raises(DecodeTimeout, match=r"decoding took longer than 0\.05 s"):
        await engine.run(time.sleep, 0.5, memory=10)
    assert time.monotonic() - started < 0.4
    assert engine.budget.used == 0
