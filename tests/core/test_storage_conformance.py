"""The storage conformance suite on each built-in URL scheme: file://, memory://, s3:// (moto)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chitram_core.storage import open_storage
from chitram_core.storage.base import Storage
from chitram_core.storage.fsspec_storage import LOCAL_WHOLE_WRITE
from chitram_core.testing.storage_conformance import StorageConformance, read_all


class TestFileStorage(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return open_storage((tmp_path / "store").as_uri())

    async def test_no_temporary_files_left(self, storage: Storage, tmp_path: Path) -> None:
        async def chunks():  # type: ignore[no-untyped-def]
            yield b"abc"

        await storage.write("x/y", chunks())
        leftovers = [p for p in (tmp_path / "store").rglob("*") if p.name.startswith(".tmp-")]
        assert leftovers == []

    @pytest.mark.parametrize("size", [0, 1, LOCAL_WHOLE_WRITE, LOCAL_WHOLE_WRITE + 1, 3_000_000])
    async def test_small_and_large_objects_round_trip(self, storage: Storage, size: int) -> None:
        """Up to LOCAL_WHOLE_WRITE bytes are written in one call, past it streamed: same bytes."""
        data = bytes(i % 251 for i in range(size))
        parts = [data[i : i + 65536] for i in range(0, size, 65536)] or [b""]

        async def chunks():  # type: ignore[no-untyped-def]
            for part in parts:
                yield part

        assert await storage.write("obj", chunks()) == size
        assert await read_all(storage, "obj") == data

    @pytest.mark.parametrize("before_failing", [100_000, LOCAL_WHOLE_WRITE + 65536])
    async def test_a_source_failing_leaves_no_file_either_way(
        self, storage: Storage, tmp_path: Path, before_failing: int
    ) -> None:
        await storage.write("kept", _one(b"old"))

        async def failing():  # type: ignore[no-untyped-def]
            for _ in range(0, before_failing, 65536):
                yield b"z" * 65536
            raise RuntimeError("the client went away")

        with pytest.raises(RuntimeError):
            await storage.write("kept", failing())
        assert await read_all(storage, "kept") == b"old"
        files = sorted(p.name for p in (tmp_path / "store").rglob("*") if p.is_file())
        assert files == ["kept"]


async def _one(data: bytes):  # type: ignore[no-untyped-def]
    yield data


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> Storage:
        return open_storage(f"memory://conformance-{uuid.uuid4().hex}")


@pytest.mark.s3
class TestS3Storage(StorageConformance):
    @pytest.fixture
    def storage(self, s3_bucket: str, moto_server: str) -> Iterator[Storage]:
        yield open_storage(
            f"s3://{s3_bucket}/{uuid.uuid4().hex}",
            {"endpoint_url": moto_server, "key": "testing", "secret": "testing"},
        )
