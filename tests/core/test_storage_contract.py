"""The storage contract on every built-in URL scheme: file://, memory:// and s3:// (moto)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chitram_core.storage import open_storage
from chitram_core.storage.base import Storage
from chitram_core.testing.storage_contract import StorageContract


class TestFileStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return open_storage((tmp_path / "store").as_uri())

    async def test_no_temporary_files_left(self, storage: Storage, tmp_path: Path) -> None:
        async def chunks():  # type: ignore[no-untyped-def]
            yield b"abc"

        await storage.write("x/y", chunks())
        leftovers = [p for p in (tmp_path / "store").rglob("*") if p.name.startswith(".tmp-")]
        assert leftovers == []


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Storage:
        return open_storage(f"memory://contract-{uuid.uuid4().hex}")


@pytest.mark.s3
class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, s3_bucket: str, moto_server: str) -> Iterator[Storage]:
        yield open_storage(
            f"s3://{s3_bucket}/{uuid.uuid4().hex}",
            {"endpoint_url": moto_server, "key": "testing", "secret": "testing"},
        )
