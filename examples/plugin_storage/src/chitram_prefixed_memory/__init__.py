"""A Chitram storage plugin: objects in process memory, under a prefix, by URL.

``pmem://<namespace>/<prefix>``: every store opened on one namespace shares one dict, so an app
and a test (or two Chitram instances) in one process see the same objects.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from chitram_core.storage.base import DEFAULT_CHUNK_SIZE, StorageKeyNotFound

__all__ = ["PrefixedMemoryStorage", "create_storage"]

_NAMESPACES: dict[str, dict[str, tuple[bytes, datetime]]] = {}
_LOCK = threading.Lock()


def create_storage(url: str, **options: Any) -> PrefixedMemoryStorage:
    """The entry point: Chitram calls this with ``CHITRAM_STORAGE_URL`` and its options."""
    return PrefixedMemoryStorage(url, **options)


class PrefixedMemoryStorage:
    def __init__(self, url: str, **options: Any) -> None:
        scheme, sep, rest = url.partition("://")
        if scheme != "pmem" or not sep or not rest.split("/", 1)[0]:
            raise ValueError(f"expected pmem://<namespace>/<prefix>, got {url!r}")
        namespace, _, prefix = rest.partition("/")
        self.url = url
        self.prefix = prefix.strip("/")
        with _LOCK:
            self._objects = _NAMESPACES.setdefault(namespace, {})

    def _key(self, key: str) -> str:
        parts = key.split("/")
        if not key or key.startswith("/") or ".." in parts or "" in parts:
            raise ValueError(f"invalid storage key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _get(self, key: str) -> bytes:
        try:
            return self._objects[self._key(key)][0]
        except KeyError:
            raise StorageKeyNotFound(key) from None

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        full = self._key(key)
        parts = [bytes(chunk) async for chunk in chunks]  # all or nothing: stored only at the end
        data = b"".join(parts)
        self._objects[full] = (data, datetime.now(UTC))
        return len(data)

    async def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        data = self._get(key)
        stop = len(data) if end is None else min(end, len(data))
        for offset in range(start, stop, chunk_size):
            yield data[offset : min(offset + chunk_size, stop)]

    def open_sync(self, key: str) -> BinaryIO:
        return io.BytesIO(self._get(key))

    async def size(self, key: str) -> int:
        return len(self._get(key))

    async def exists(self, key: str) -> bool:
        return self._key(key) in self._objects

    async def delete(self, key: str) -> None:
        self._objects.pop(self._key(key), None)

    async def move(self, src: str, dst: str) -> None:
        value = self._objects.pop(self._key(src), None)
        if value is None:
            raise StorageKeyNotFound(src)
        self._objects[self._key(dst)] = value

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        wanted = prefix.strip("/")
        for full in list(self._objects):
            if not full.startswith(base):
                continue
            key = full[len(base) :]
            if not wanted or key == wanted or key.startswith(wanted + "/"):
                yield key

    async def modified(self, key: str) -> datetime | None:
        value = self._objects.get(self._key(key))
        return value[1] if value else None

    async def probe(self) -> float:
        started = time.perf_counter()
        key = "health/probe"

        async def one() -> AsyncIterator[bytes]:
            yield b"ok"

        await self.write(key, one())
        assert self._get(key) == b"ok"
        await self.delete(key)
        return (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        return None
