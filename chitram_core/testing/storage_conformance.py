"""The storage conformance suite: every ``chitram.storage`` backend must pass these.

A plugin author subclasses :class:`StorageConformance` in their own tests and provides a
``storage`` fixture (a fresh, empty store for each test)::

    class TestMyStore(StorageConformance):
        @pytest.fixture
        def storage(self):
            return MyStore("mystore://bucket/prefix")

The tests are async and use anyio's pytest plugin (``anyio_backend`` must be defined).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chitram_core.storage.base import Storage, StorageKeyNotFound


async def _aiter(chunks: Sequence[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def read_all(storage: Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, start, end)])


class _Boom(Exception):
    pass


async def _failing(chunks: Sequence[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    raise _Boom("the source failed half way")


_slow = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.anyio
class StorageConformance:
    """Behaviour the upload and serving flows rely on."""

    async def test_write_then_read_round_trips(self, storage: Storage) -> None:
        data = bytes(range(256)) * 1000
        written = await storage.write("a/b/object", _aiter([data[:1000], b"", data[1000:]]))
        assert written == len(data)
        assert await read_all(storage, "a/b/object") == data
        assert await storage.size("a/b/object") == len(data)
        assert await storage.exists("a/b/object")

    async def test_empty_object(self, storage: Storage) -> None:
        assert await storage.write("empty", _aiter([])) == 0
        assert await read_all(storage, "empty") == b""

    @_slow
    @given(
        data=st.binary(min_size=0, max_size=5000),
        bounds=st.tuples(st.integers(0, 6000), st.one_of(st.none(), st.integers(0, 6000))),
    )
    async def test_any_range_reads_back_right(
        self, storage: Storage, data: bytes, bounds: tuple[int, int | None]
    ) -> None:
        key = "ranges/" + hashlib.sha256(data).hexdigest()
        await storage.write(key, _aiter([data]))
        start, end = bounds
        start = min(start, len(data))
        assert await read_all(storage, key, start, end) == data[start:end]

    @_slow
    @given(chunks=st.lists(st.binary(max_size=3000), max_size=12))
    async def test_any_chunking_round_trips(self, storage: Storage, chunks: list[bytes]) -> None:
        key = "chunks/" + hashlib.sha256(b"".join(chunks)).hexdigest()
        await storage.write(key, _aiter(chunks))
        assert await read_all(storage, key) == b"".join(chunks)

    async def test_concurrent_readers_each_read_the_whole_object(self, storage: Storage) -> None:
        """Readers interleaved chunk by chunk never share a position (a served image and its
        thumbnail job read the same blob at once)."""
        data = bytes(range(256)) * 400
        await storage.write("shared", _aiter([data]))
        readers = [storage.read("shared", chunk_size=4096) for _ in range(3)]
        got = [bytearray() for _ in readers]
        done = [False] * len(readers)
        while not all(done):
            for i, reader in enumerate(readers):
                if not done[i]:
                    chunk = await anext(reader, None)
                    if chunk is None:
                        done[i] = True
                    else:
                        got[i] += chunk
        assert [bytes(g) for g in got] == [data] * len(readers)

    async def test_overwrite_replaces_whole_object(self, storage: Storage) -> None:
        await storage.write("k", _aiter([b"x" * 5000]))
        await storage.write("k", _aiter([b"short"]))
        assert await read_all(storage, "k") == b"short"

    async def test_failed_write_leaves_nothing(self, storage: Storage) -> None:
        with pytest.raises(_Boom):
            await storage.write("half/written", _failing([b"partial" * 1000]))
        assert not await storage.exists("half/written")
        assert [key async for key in storage.keys("half")] == []

    async def test_failed_overwrite_keeps_old_bytes(self, storage: Storage) -> None:
        await storage.write("keep", _aiter([b"original"]))
        with pytest.raises(_Boom):
            await storage.write("keep", _failing([b"new" * 1000]))
        assert await read_all(storage, "keep") == b"original"

    async def test_missing_key(self, storage: Storage) -> None:
        assert not await storage.exists("nope")
        with pytest.raises(StorageKeyNotFound):
            await read_all(storage, "nope")
        with pytest.raises(StorageKeyNotFound):
            await storage.size("nope")

    async def test_delete_is_idempotent(self, storage: Storage) -> None:
        await storage.write("gone", _aiter([b"bye"]))
        await storage.delete("gone")
        await storage.delete("gone")
        assert not await storage.exists("gone")

    async def test_move(self, storage: Storage) -> None:
        await storage.write("tmp/x", _aiter([b"payload"]))
        await storage.move("tmp/x", "final/y")
        assert not await storage.exists("tmp/x")
        assert await read_all(storage, "final/y") == b"payload"

    async def test_keys_lists_by_prefix(self, storage: Storage) -> None:
        for key in ("p/one", "p/sub/two", "q/three"):
            await storage.write(key, _aiter([b"."]))
        assert sorted([key async for key in storage.keys("p")]) == ["p/one", "p/sub/two"]

    async def test_open_sync_is_seekable(self, storage: Storage) -> None:
        await storage.write("sync", _aiter([b"0123456789"]))
        with storage.open_sync("sync") as handle:
            handle.seek(4)
            assert handle.read(3) == b"456"

    async def test_probe(self, storage: Storage) -> None:
        latency = await storage.probe()
        assert latency >= 0
        assert [key async for key in storage.keys("health")] == []

    async def test_open_sync_of_a_missing_key(self, storage: Storage) -> None:
        with pytest.raises(StorageKeyNotFound):
            storage.open_sync("nope")

    async def test_modified_is_recent_or_unknown(self, storage: Storage) -> None:
        """The orphan sweep trusts this age: it must never claim an object is older than it is."""
        before = datetime.now(UTC) - timedelta(minutes=5)
        await storage.write("dated", _aiter([b"x"]))
        when = await storage.modified("dated")
        if when is not None:
            assert when.tzinfo is not None
            assert before <= when <= datetime.now(UTC) + timedelta(minutes=5)
        assert await storage.modified("never/written") is None

    async def test_rejects_escaping_keys(self, storage: Storage) -> None:
        for key in ("../etc/passwd", "/abs", "a/../../b", ""):
            with pytest.raises(ValueError):
                await storage.write(key, _aiter([b"x"]))
            with pytest.raises(ValueError):
                await read_all(storage, key)
            with pytest.raises(ValueError):
                storage.open_sync(key)
            with pytest.raises(ValueError):
                await storage.exists(key)
            with pytest.raises(ValueError):
                await storage.size(key)
            with pytest.raises(ValueError):
                await storage.delete(key)
            with pytest.raises(ValueError):
                await storage.move(key, "elsewhere")
