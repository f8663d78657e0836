"""BaseStorage: a plugin writing only the four primitives passes the storage conformance suite."""

from __future__ import annotations

import io
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from typing import BinaryIO

import pytest

from chitram_core.storage import open_storage
from chitram_core.storage.base import BaseStorage, Storage, StorageKeyNotFound, check_key
from chitram_core.storage.fsspec_storage import FsspecStorage
from chitram_core.testing.storage_conformance import StorageConformance, read_all


class DictStorage(BaseStorage):
    """The smallest useful plugin: objects in a dict, and only the primitives written.

    It records every key its primitives were handed, so the tests can tell that the base class
    checked keys before any primitive saw them.
    """

    def __init__(self) -> None:
        self.url = "dict://"
        self.objects: dict[str, bytes] = {}
        self.seen: list[str] = []

    async def _write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        self.seen.append(key)
        data = b"".join([chunk async for chunk in chunks])  # published only once whole
        self.objects[key] = data
        return len(data)

    def _open(self, key: str) -> BinaryIO:
        self.seen.append(key)
        try:
            return io.BytesIO(self.objects[key])
        except KeyError:
            raise StorageKeyNotFound(key) from None

    async def _delete(self, key: str) -> None:
        self.seen.append(key)
        self.objects.pop(key, None)

    async def _keys(self, prefix: str) -> AsyncIterator[str]:
        wanted = prefix.rstrip("/")
        for key in list(self.objects):
            if not wanted or key == wanted or key.startswith(wanted + "/"):
                yield key


class TestMinimalPluginPassesTheConformanceSuite(StorageConformance):
    @pytest.fixture
    def storage(self) -> Storage:
        return DictStorage()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_a_minimal_plugin_is_a_storage() -> None:
    assert isinstance(DictStorage(), Storage)


def test_the_fsspec_storage_is_a_base_storage() -> None:
    assert isinstance(open_storage("memory://base-storage"), FsspecStorage)
    assert issubclass(FsspecStorage, BaseStorage)


def test_a_plugin_missing_a_primitive_cannot_be_made() -> None:
    class NoKeys(BaseStorage):
        async def _write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
            return 0

        def _open(self, key: str) -> BinaryIO:
            return io.BytesIO()

        async def _delete(self, key: str) -> None:
            return None

    with pytest.raises(TypeError, match="_keys"):
        NoKeys()  # type: ignore[abstract]


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../../b", "a/.."])
def test_check_key_refuses_keys_that_leave_the_store(key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        check_key(key)


@pytest.mark.parametrize("key", ["a", "blobs/ab/cd/abcd", "a/.b", "a..b/c"])
def test_check_key_accepts_relative_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.anyio
async def test_primitives_never_see_an_unchecked_key() -> None:
    storage = DictStorage()
    for bad in ("../x", "/x"):
        with pytest.raises(ValueError):
            await storage.write(bad, _one(b"."))
        with pytest.raises(ValueError):
            await read_all(storage, bad)
        with pytest.raises(ValueError):
            await storage.copy("fine", bad)
        with pytest.raises(ValueError):
            [key async for key in storage.keys(bad)]
    assert storage.seen == []


@pytest.mark.anyio
async def test_copy_keeps_the_source() -> None:
    storage = DictStorage()
    await storage.write("a/src", _one(b"payload"))
    await storage.copy("a/src", "b/dst")
    assert await read_all(storage, "a/src") == b"payload"
    assert await read_all(storage, "b/dst") == b"payload"


@pytest.mark.anyio
async def test_moving_a_missing_key_publishes_nothing() -> None:
    storage = DictStorage()
    with pytest.raises(StorageKeyNotFound):
        await storage.move("missing", "dst")
    assert not await storage.exists("dst")


@pytest.mark.anyio
async def test_a_store_that_cannot_stat_knows_no_age() -> None:
    storage = DictStorage()
    await storage.write("x", _one(b"12345"))
    assert await storage.size("x") == 5
    assert await storage.modified("x") is None


@pytest.mark.anyio
async def test_fsspec_storage_knows_when_an_object_was_written() -> None:
    storage = open_storage("memory://base-storage-ages")
    await storage.write("aged", _one(b"."))
    when = await storage.modified("aged")
    assert when is not None and when.tzinfo is not None
    assert abs((datetime.now(UTC) - when).total_seconds()) < 300
