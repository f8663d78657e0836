"""A large upload streams through the server process: its bytes reach the image engine as a
file the job reads itself, never as one bytes object of the server's, whether they came in one
request or as resumable chunks, on a local store or a remote one."""

from __future__ import annotations

import hashlib
import random
import tempfile
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from imagekit import make_settings
from PIL import Image as PILImage

from chitram_core import Chitram
from chitram_core.engine.work import LocalFile
from chitram_core.images.formats import HEAD_BYTES

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


def write_noise_png(path: Path, side: int, seed: int) -> int:
    """An uncompressed noise PNG of about ``3 * side**2`` bytes; its size."""
    pixels = random.Random(seed).randbytes(side * side * 3)
    PILImage.frombytes("RGB", (side, side), pixels).save(path, "PNG", compress_level=0)
    return path.stat().st_size


def chunks_of(path: Path, size: int) -> list[bytes]:
    data = path.read_bytes()
    return [data[i : i + size] for i in range(0, len(data), size)]


async def resumable(chitram: Chitram, parts: list[bytes]) -> str:
    upload = await chitram.uploads.create(sum(map(len, parts)))
    for part in parts:
        upload = await chitram.uploads.append(upload.id, upload.offset, part)
    assert upload.image_id is not None
    return upload.image_id


async def whole(chitram: Chitram, path: Path) -> str:
    with path.open("rb") as handle:
        image = await chitram.images.upload(handle, filename="big.png")
    return image.id


Way = Callable[[Chitram, Path], Awaitable[str]]


async def by_resumable(chitram: Chitram, path: Path) -> str:
    return await resumable(chitram, chunks_of(path, 2 * MiB))


WAYS: dict[str, Way] = {"one request": whole, "resumable": by_resumable}


def watch_engine(chitram: Chitram) -> list[tuple[str, list[Any]]]:
    """Every job the engine is given, as (function name, its positional arguments): the
    engine itself still runs them."""
    seen: list[tuple[str, list[Any]]] = []
    run = chitram.engine.run

    async def watched(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        seen.append((function.__name__, list(args)))
        return await run(function, *args, **kwargs)

    chitram.engine.run = watched  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize("store", ["file", "memory"])
async def test_a_large_upload_reaches_the_engine_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str, store: str
) -> None:
    """A file larger than the head the checks keep in memory is handed to the upload's engine
    job as a :class:`LocalFile`: the store's own file on a local store, a temporary copy
    (removed afterwards) on any other. No job gets bytes larger than that head. The image is
    the bytes uploaded."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    source = tmp_path / "big.png"
    write_noise_png(source, 900, seed=1)  # ~2.4 MB, over the 1 MiB head
    assert source.stat().st_size > HEAD_BYTES
    url = f"memory://streaming-{way.replace(' ', '-')}" if store == "memory" else None
    settings = make_settings(tmp_path / "data", storage_url=url)
    async with Chitram(settings, background=False) as chitram:
        seen = watch_engine(chitram)
        image_id = await WAYS[way](chitram, source)
        stored = b"".join([c async for c in chitram.images.read(image_id)])
        image = await chitram.images.get(image_id)
    assert hashlib.sha256(stored).hexdigest() == image.sha256
    verify = [args for name, args in seen if name == "upload_image"]
    assert len(verify) == 1
    assert isinstance(verify[0][0], LocalFile)
    large = [
        name
        for name, args in seen
        for arg in args
        if isinstance(arg, bytes | bytearray) and len(arg) > HEAD_BYTES
    ]
    assert large == []
    assert list(scratch.iterdir()) == []  # the temporary copies are gone


async def test_a_small_upload_still_goes_to_the_engine_as_bytes(tmp_path: Path) -> None:
    """A file within the head is in memory already: it is sent as it is, with no file."""
    source = tmp_path / "small.png"
    write_noise_png(source, 100, seed=2)
    async with Chitram(make_settings(tmp_path / "data"), background=False) as chitram:
        seen = watch_engine(chitram)
        await whole(chitram, source)
    verify = [args for name, args in seen if name == "upload_image"]
    assert [type(args[0]) for args in verify] == [bytes]


@pytest.mark.parametrize("way", sorted(WAYS))
async def test_the_server_process_holds_a_fraction_of_a_large_upload(
    tmp_path: Path, way: str
) -> None:
    """Peak memory traced in this process (every thread of it) while a ~16 MB image is
    uploaded stays under half the file: the bytes are streamed in chunks, not joined,
    copied or pickled whole (which costs at least the file's size, twice). The image work runs
    in the engine's worker processes, which tracemalloc does not see."""
    source = tmp_path / "big.png"
    size = write_noise_png(source, 2300, seed=3)
    settings = make_settings(
        tmp_path / "data", max_upload_bytes=64 * MiB, max_resumable_bytes=64 * MiB
    )
    async with Chitram(settings, background=False) as chitram:
        parts = chunks_of(source, MiB) if way == "resumable" else []
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            if way == "resumable":
                image_id = await resumable(chitram, parts)
            else:
                image_id = await whole(chitram, source)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        image = await chitram.images.get(image_id)
    assert image.file_size > 0
    assert peak < size // 2, f"{peak / MiB:.1f} MiB traced for a {size / MiB:.1f} MiB upload"
