"""A Chitram storage plugin: objects in process memory, under a prefix, by URL.

``pmem://<namespace>/<prefix>``: every store opened on one namespace shares one dict, so an app
and a test (or two Chitram instances) in one process see the same objects.

It subclasses :class:`~chitram_core.storage.base.BaseStorage`, so it writes only the four
primitives (keys arrive already checked) and two overrides that a dict does better than the
defaults: ``_info`` (it knows when an object was written) and ``_move`` (a rename).
"""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from chitram_core.storage.base import BaseStorage, ObjectInfo, StorageKeyNotFound

__all__ = ["PrefixedMemoryStorage", "create_storage"]

_NAMESPACES: dict[str, dict[str, tuple[bytes, datetime]]] = {}
_LOCK = threading.Lock()


def create_storage(url: str, **options: Any) -> PrefixedMemoryStorage:
    """The entry point: Chitram calls this with ``CHITRAM_STORAGE_URL`` and its options."""
    return PrefixedMemoryStorage(url, **options)


class PrefixedMemoryStorage(BaseStorage):
    def __init__(self, url: str, **options: Any) -> None:
        scheme, sep, rest = url.partition("://")
        if scheme != "pmem" or not sep or not rest.split("/", 1)[0]:
            raise ValueError(f"expected pmem://<namespace>/<prefix>, got {url!r}")
        namespace, _, prefix = rest.partition("/")
        self.url = url
        self.prefix = prefix.strip("/")
        with _LOCK:
            self._objects = _NAMESPACES.setdefault(namespace, {})

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    # the four primitives -----------------------------------------------------------------

    async def _write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        parts = [bytes(chunk) async for chunk in chunks]  # all or nothing: stored only at the end
        data = b"".join(parts)
        self._objects[self._full(key)] = (data, datetime.now(UTC))
        return len(data)

    def _open(self, key: str) -> BinaryIO:
        try:
            return io.BytesIO(self._objects[self._full(key)][0])
        except KeyError:
            raise StorageKeyNotFound(key) from None

    async def _delete(self, key: str) -> None:
        self._objects.pop(self._full(key), None)

    async def _keys(self, prefix: str) -> AsyncIterator[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        wanted = prefix.strip("/")
        for full in list(self._objects):
            if not full.startswith(base):
                continue
            key = full[len(base) :]
            if not wanted or key == wanted or key.startswith(wanted + "/"):
                yield key

    # what a dict does better than the defaults -------------------------------------------

    async def _info(self, key: str) -> ObjectInfo | None:
        value = self._objects.get(self._full(key))
        return None if value is None else ObjectInfo(size=len(value[0]), modified=value[1])

    async def _move(self, src: str, dst: str) -> None:
        value = self._objects.pop(self._full(src), None)
        if value is None:
            raise StorageKeyNotFound(src)
        self._objects[self._full(dst)] = value
