"""Ranged reads of stored objects, originals and thumbnails alike, small ones from memory.

Content-addressed bytes never change, so an object of at most ``SMALL_OBJECT_BYTES`` is kept in
the process's :class:`~chitram_core.cache.small.SmallObjects` once read: the hot read path then
costs no worker-thread hop (see docs/benchmarks.md). Whether an object may be served at all is
decided before, by the lookup of its row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import attrs

from chitram_core.cache.small import SMALL_OBJECT_BYTES, SmallObjects
from chitram_core.errors import ChitramError, InvalidRequest, ServiceUnavailable
from chitram_core.storage import Storage, StorageError, StorageKeyNotFound


@attrs.frozen
class StoredObject:
    """What one read needs of a stored object: where, how big, and what it is kept by in
    memory (an original's SHA-256, a thumbnail's key)."""

    key: str
    size: int
    memory_key: str


Missing = Callable[[StorageKeyNotFound], ChitramError]
"""What a read raises when a row names bytes that storage does not have."""


class ObjectReader:
    """:meth:`stream` is the one ranged read; :meth:`in_memory` the no-I/O answer."""

    def __init__(self, storage: Storage, small_objects: SmallObjects) -> None:
        self.storage = storage
        self.small_objects = small_objects

    def in_memory(self, obj: StoredObject) -> bytes | None:
        """The object's bytes when this process holds them (no I/O), else None."""
        return self.held(obj.memory_key, obj.size)

    def held(self, memory_key: str, size: int) -> bytes | None:
        """:meth:`in_memory` by the object's memory key and size (a warm read's hot path needs
        no :class:`StoredObject`)."""
        if size > SMALL_OBJECT_BYTES:
            return None
        data = self.small_objects.get(memory_key)
        return data if data is not None and len(data) == size else None

    async def stream(
        self, obj: StoredObject, start: int, end: int | None, *, missing: Missing
    ) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of ``obj`` (``end`` exclusive, clamped to its size); a range
        outside it is ``INVALID_REQUEST``; ``missing(exc)`` is raised for absent bytes."""
        stop = obj.size if end is None else min(end, obj.size)
        if start < 0 or start > obj.size or stop < start:
            raise InvalidRequest(
                "The byte range is outside the image", start=start, end=end, size=obj.size
            )
        if start == stop:
            return
        try:
            if obj.size <= SMALL_OBJECT_BYTES:
                data = self.in_memory(obj)
                if data is None:
                    data = b"".join([c async for c in self.storage.read(obj.key, 0, obj.size)])
                    if len(data) == obj.size:
                        self.small_objects.put(obj.memory_key, data)
                yield data[start:stop]
                return
            async for chunk in self.storage.read(obj.key, start, stop):
                yield chunk
        except StorageKeyNotFound as exc:
            raise missing(exc) from exc
        except StorageError as exc:
            # The store is down or failing: an outage, not a fault of the request (503, retry).
            raise ServiceUnavailable("Storage is not answering", retry_after=5) from exc

    def forget(self, *memory_keys: str) -> None:
        """Drop objects whose bytes are being removed."""
        for key in memory_keys:
            self.small_objects.discard(key)
