"""The Storage protocol: what a ``chitram.storage`` plugin implements.

Keys are relative, slash-separated strings. ``write`` is atomic: the object appears whole or not
at all. ``end`` in ``read`` is exclusive, like a slice.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import BinaryIO, Protocol, runtime_checkable

DEFAULT_CHUNK_SIZE = 64 * 1024


@runtime_checkable
class Storage(Protocol):
    url: str

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the chunks under ``key`` atomically; the number of bytes written."""
        ...

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of ``key``; :class:`StorageKeyNotFound` if absent."""
        ...

    def open_sync(self, key: str) -> BinaryIO:
        """A blocking, seekable binary file for worker threads (image decoding)."""
        ...

    async def size(self, key: str) -> int: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...

    async def move(self, src: str, dst: str) -> None:
        """Rename within the store (atomic where the backend allows it)."""
        ...

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key under ``prefix``."""
        ...

    async def probe(self) -> float:
        """Write, read back and delete a tiny object; the latency in milliseconds."""
        ...

    async def close(self) -> None: ...


class StorageError(Exception):
    """A storage backend failed; the service decides what a caller sees."""


class StorageKeyNotFound(StorageError, KeyError):
    pass
