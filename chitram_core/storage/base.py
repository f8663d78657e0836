"""The Storage protocol, and :class:`BaseStorage`: what a ``chitram.storage`` plugin implements.

Keys are relative, slash-separated strings. ``write`` is atomic: the object appears whole or not
at all. ``end`` in ``read`` is exclusive, like a slice.

A plugin may implement the whole :class:`Storage` protocol itself, but the short way is to
subclass :class:`BaseStorage` (as an fsspec filesystem subclasses ``AbstractFileSystem``) and
write four primitives: ``_write``, ``_open``, ``_delete`` and ``_keys``. Key validation, range
reads, sizes, existence, ``copy``, ``move``, ``probe`` and ``close`` are derived from them;
override a derived ``_`` method where the backend can do it better (a rename, a stat).
"""

from __future__ import annotations

import time
import uuid
from abc import abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import datetime
from typing import Any, BinaryIO, ClassVar, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.to_thread
import attrs

DEFAULT_CHUNK_SIZE = 64 * 1024

_T = TypeVar("_T")


def check_key(key: str) -> str:
    """``key`` itself when it is a relative path that cannot climb out of the store.

    :class:`BaseStorage` checks every key (and listing prefix) with this before a primitive sees
    it; a plugin that implements :class:`Storage` directly should call it too.
    """
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid storage key {key!r}")
    return key


@runtime_checkable
class Storage(Protocol):
    """Where image bytes live: the ``chitram.storage`` plugin protocol.

    Keys are relative paths chosen by Chitram; every method is async except :meth:`open_sync`
    (for worker threads). Subclass :class:`BaseStorage` to write only four primitives.
    """

    url: str
    """The URL the store was opened with (credentials left out)."""

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

    async def size(self, key: str) -> int:
        """The size of ``key`` in bytes; :class:`StorageKeyNotFound` if absent."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        ...

    async def modified(self, key: str) -> datetime | None:
        """When ``key`` was last written (timezone-aware); None when absent or unknown.

        The orphan sweep removes only objects it knows to be old, so a store that cannot tell
        (the default) keeps everything unless the sweep is asked for ``older_than=0``.
        """
        return None

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

    async def close(self) -> None:
        """Release connections and clients; the store is not used after it."""
        ...


class StorageError(Exception):
    """A storage backend failed; the service decides what a caller sees."""


class StorageKeyNotFound(StorageError, KeyError):
    pass


@attrs.frozen
class ObjectInfo:
    """What a store knows about one object without reading it."""

    size: int
    modified: datetime | None = None


class BaseStorage(Storage):
    """A :class:`Storage` built on four primitives; everything else has a working default.

    Primitives (keys arrive already checked by :func:`check_key`):

    - ``await _write(key, chunks) -> int``: store atomically; publish nothing if ``chunks``
      raises.
    - ``_open(key) -> BinaryIO``: a blocking, seekable file for reading; raise
      :class:`StorageKeyNotFound` (or :class:`FileNotFoundError`) when absent. It runs in a
      worker thread.
    - ``await _delete(key)``: remove; a missing key is not an error.
    - ``_keys(prefix)``: an async iterator of every key under ``prefix`` (``""``: all).

    Blocking work goes through :meth:`_run`, at most :attr:`max_threads` calls at once per store.
    """

    url: str
    max_threads: ClassVar[int] = 16

    # primitives ------------------------------------------------------------------------------

    @abstractmethod
    async def _write(self, key: str, chunks: AsyncIterable[bytes]) -> int: ...

    @abstractmethod
    def _open(self, key: str) -> BinaryIO: ...

    @abstractmethod
    async def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _keys(self, prefix: str) -> AsyncIterator[str]: ...

    # derived, overridable --------------------------------------------------------------------

    async def _run(self, func: Callable[..., _T], *args: Any) -> _T:
        """``func(*args)`` in a worker thread, within this store's thread budget."""
        limiter: anyio.CapacityLimiter | None = self.__dict__.get("_thread_limiter")
        if limiter is None:
            limiter = self.__dict__["_thread_limiter"] = anyio.CapacityLimiter(self.max_threads)
        return await anyio.to_thread.run_sync(func, *args, limiter=limiter)

    def _open_existing(self, key: str) -> BinaryIO:
        try:
            return self._open(key)
        except FileNotFoundError as exc:
            raise StorageKeyNotFound(key) from exc

    def _read_span(self, key: str, start: int, length: int) -> bytes:
        with self._open_existing(key) as handle:
            if start:
                handle.seek(start)
            return handle.read(length)

    async def _read(
        self, key: str, start: int, end: int | None, chunk_size: int
    ) -> AsyncIterator[bytes]:
        if end is not None and end - start <= chunk_size:
            # A small read (a thumbnail, a small image): one worker-thread hop.
            data = await self._run(self._read_span, key, start, max(0, end - start))
            if data:
                yield data
            return
        handle = await self._run(self._open_existing, key)
        try:
            if start:
                await self._run(handle.seek, start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                n = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = await self._run(handle.read, n)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):
                await self._run(handle.close)

    def _stat(self, key: str) -> ObjectInfo:
        with self._open_existing(key) as handle:
            return ObjectInfo(size=handle.seek(0, 2))

    async def _info(self, key: str) -> ObjectInfo | None:
        """Size and age of ``key``, None when absent. The default opens it and seeks to the
        end, and knows no age: override where the backend can stat."""
        try:
            return await self._run(self._stat, key)
        except StorageKeyNotFound:
            return None

    async def _size(self, key: str) -> int:
        info = await self._info(key)
        if info is None:
            raise StorageKeyNotFound(key)
        return info.size

    async def _exists(self, key: str) -> bool:
        return await self._info(key) is not None

    async def _modified(self, key: str) -> datetime | None:
        info = await self._info(key)
        return None if info is None else info.modified

    async def _copy(self, src: str, dst: str) -> None:
        # A missing source raises inside the write, which then publishes nothing.
        await self._write(dst, self._read(src, 0, None, DEFAULT_CHUNK_SIZE))

    async def _move(self, src: str, dst: str) -> None:
        await self._copy(src, dst)
        await self._delete(src)

    # the Storage protocol: every key checked once, here --------------------------------------

    async def write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        return await self._write(check_key(key), chunks)

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        return self._read(check_key(key), start, end, chunk_size)

    def open_sync(self, key: str) -> BinaryIO:
        return self._open_existing(check_key(key))

    def local_path(self, key: str) -> str | None:
        """The file on this host holding ``key``'s bytes, for another process to read (the
        image engine's workers); None when the store is not a local directory (the default).
        Optional: not part of the :class:`Storage` protocol, callers fall back to a copy."""
        return None

    async def size(self, key: str) -> int:
        return await self._size(check_key(key))

    async def exists(self, key: str) -> bool:
        return await self._exists(check_key(key))

    async def modified(self, key: str) -> datetime | None:
        return await self._modified(check_key(key))

    async def delete(self, key: str) -> None:
        await self._delete(check_key(key))

    async def copy(self, src: str, dst: str) -> None:
        """Copy ``src`` to ``dst`` within the store (``dst`` is written atomically)."""
        await self._copy(check_key(src), check_key(dst))

    async def move(self, src: str, dst: str) -> None:
        await self._move(check_key(src), check_key(dst))

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        if prefix:
            check_key(prefix.rstrip("/") or "/")
        return self._keys(prefix)

    async def probe(self) -> float:
        started = time.perf_counter()
        key = f"health/{uuid.uuid4().hex}"

        async def _payload() -> AsyncIterator[bytes]:
            yield b"ok"

        await self.write(key, _payload())
        data = b"".join([chunk async for chunk in self.read(key)])
        await self.delete(key)
        if data != b"ok":
            raise StorageError("storage probe read back different bytes")
        return (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        return None
