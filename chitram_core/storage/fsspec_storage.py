"""Storage over any fsspec filesystem, addressed by URL.

fsspec calls are blocking, so each runs in a worker thread. ``file://`` writes go to a temporary
file in the target directory and are renamed into place; other filesystems rely on the object
store's own all-or-nothing upload (s3 multipart completes only on close) and discard on error.
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

import anyio
import fsspec
from fsspec.core import url_to_fs
from fsspec.spec import AbstractBufferedFile

from chitram_core.storage.base import (
    DEFAULT_CHUNK_SIZE,
    BaseStorage,
    ObjectInfo,
    StorageError,
    StorageKeyNotFound,
    check_key,
)

LOCAL_WHOLE_WRITE = 1024 * 1024
"""Local objects up to this size are written in one worker-thread call (open, write, fsync,
rename): a thread hop costs the event loop more than writing the bytes."""


class FsspecStorage(BaseStorage):
    """A :class:`~chitram_core.storage.base.BaseStorage` on an fsspec filesystem rooted at a URL."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        try:
            fs, root = url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            raise StorageError(f"cannot open storage {url!r}: {exc}") from exc
        self.fs: fsspec.AbstractFileSystem = fs
        self.root = root.rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.is_local = protocol in {"file", "local"}
        self.is_memory = protocol == "memory"
        if self.is_local:
            os.makedirs(self.root, exist_ok=True)
        self._buffered: bool | None = None

    def _path(self, key: str) -> str:
        """Where a (checked) key lives in the filesystem."""
        return f"{self.root}/{key}" if self.root else key

    # writing -------------------------------------------------------------------------------

    async def _write(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        path = self._path(key)
        if self.is_local:
            return await self._write_local(path, chunks)
        if await self._publishes_on_close():
            # Buffered object-store files (s3fs, gcsfs...) publish only on close; discard aborts.
            handle = await self._run(self._open_remote, path)
            return await self._write_handle(handle, chunks, path)
        # Filesystems that publish on open: write aside, then rename over the target.
        parent = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
        tmp = f"{parent}.tmp-{uuid.uuid4().hex}"
        handle = await self._run(self._open_remote, tmp)
        written = await self._write_handle(handle, chunks, tmp)
        await self._run(self._mv, tmp, path)
        return written

    async def _publishes_on_close(self) -> bool:
        if self._buffered is None:

            def _check() -> bool:
                probe = (
                    f"{self.root}/.tmp-probe-{uuid.uuid4().hex}"
                    if self.root
                    else f".tmp-probe-{uuid.uuid4().hex}"
                )
                handle = self._open_remote(probe)
                buffered = isinstance(handle, AbstractBufferedFile)
                if buffered:
                    _abort(handle)
                else:
                    handle.close()
                self._rm_quiet(probe)
                return buffered

            self._buffered = await self._run(_check)
        return self._buffered

    async def _pump(self, handle: Any, chunks: AsyncIterable[bytes]) -> int:
        """Write every chunk to ``handle`` in worker threads; the number of bytes written."""
        written = 0
        async for chunk in chunks:
            if chunk:
                await self._run(handle.write, chunk)
                written += len(chunk)
        return written

    async def _write_handle(self, handle: Any, chunks: AsyncIterable[bytes], path: str) -> int:
        try:
            written = await self._pump(handle, chunks)
            await self._run(handle.close)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if isinstance(handle, AbstractBufferedFile):
                    await self._run(_abort, handle)
                else:
                    await self._run(handle.close)
                    await self._run(self._rm_quiet, path)
            raise
        return written

    def _make_parent(self, path: str) -> None:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            self.fs.makedirs(parent, exist_ok=True)

    def _mv(self, src: str, dst: str) -> None:
        self._make_parent(dst)
        self.fs.mv(src, dst)
        self._invalidate(src)
        self._invalidate(dst)

    def _open_remote(self, path: str) -> Any:
        self._make_parent(path)
        return self.fs.open(path, "wb")

    async def _write_local(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        """Into a temporary file beside ``path``, fsync'd, then renamed over it. An object of
        at most ``LOCAL_WHOLE_WRITE`` bytes (an upload, a thumbnail) is gathered first and
        written in one worker-thread call; a bigger one is streamed a chunk a call."""
        directory = os.path.dirname(path)
        tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
        rest = aiter(chunks)
        head: list[bytes] = []
        gathered = 0
        async for chunk in rest:
            head.append(chunk)
            gathered += len(chunk)
            if gathered > LOCAL_WHOLE_WRITE:
                break
        else:
            await self._run(_write_whole, directory, tmp, path, head)
            return gathered

        def _open() -> BinaryIO:
            os.makedirs(directory, exist_ok=True)
            return open(tmp, "xb")

        handle = await self._run(_open)
        try:
            await self._run(handle.writelines, head)
            written = gathered + await self._pump(handle, rest)

            def _commit() -> None:
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()
                os.replace(tmp, path)

            await self._run(_commit)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._run(_discard_local, handle, tmp)
            raise
        return written

    # reading -------------------------------------------------------------------------------

    def local_path(self, key: str) -> str | None:
        return os.path.abspath(self._path(check_key(key))) if self.is_local else None

    def _open(self, key: str) -> BinaryIO:
        path = self._path(key)
        if self.is_local:
            return open(path, "rb")
        if self.is_memory:
            # fsspec's memory filesystem hands every reader the same file object, with one
            # shared position: concurrent readers (a download and the thumbnail job) would read
            # each other's offsets. A private copy of an object already in memory is cheap.
            return io.BytesIO(self.fs.cat_file(path))
        if not self.fs.exists(path):
            raise FileNotFoundError(path)
        return cast(BinaryIO, self.fs.open(path, "rb", block_size=DEFAULT_CHUNK_SIZE * 4))

    async def _info(self, key: str) -> ObjectInfo | None:
        try:
            info = await self._run(self.fs.info, self._path(key))
        except FileNotFoundError:
            return None
        return ObjectInfo(size=int(info.get("size") or 0), modified=_mtime(info))

    async def _size(self, key: str) -> int:
        try:
            return int(await self._run(self.fs.size, self._path(key)))
        except FileNotFoundError as exc:
            raise StorageKeyNotFound(key) from exc

    async def _exists(self, key: str) -> bool:
        return bool(await self._run(self.fs.exists, self._path(key)))

    # removing and moving -------------------------------------------------------------------

    async def _delete(self, key: str) -> None:
        await self._run(self._rm_quiet, self._path(key))

    def _rm_quiet(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)
        self._invalidate(path)

    async def _move(self, src: str, dst: str) -> None:
        src_path, dst_path = self._path(src), self._path(dst)
        if self.is_local:

            def _replace() -> None:
                os.makedirs(os.path.dirname(dst_path), exist_ok=True)
                os.replace(src_path, dst_path)

            await self._run(_replace)
        else:
            await self._run(self._mv, src_path, dst_path)

    def _invalidate(self, path: str) -> None:
        invalidate = getattr(self.fs, "invalidate_cache", None)
        if invalidate is not None:
            invalidate(path)

    async def _keys(self, prefix: str) -> AsyncIterator[str]:
        base = self.root
        target = f"{base}/{prefix}".rstrip("/") if prefix else base

        def _find() -> list[str]:
            self._invalidate(target)
            try:
                return list(self.fs.find(target))
            except FileNotFoundError:
                return []

        strip = len(base) + 1 if base else 0
        for path in await self._run(_find):
            path = path.lstrip("/") if not base.startswith("/") else path
            key = path[strip:] if path.startswith(base) else path
            if key.rsplit("/", 1)[-1].startswith(".tmp-"):
                continue
            yield key


def _mtime(info: dict[str, Any]) -> datetime | None:
    """When the object was last written, where the filesystem's ``info`` says."""
    for field in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
    return None


def _abort(handle: AbstractBufferedFile) -> None:
    """Abandon a buffered upload: nothing is published, and closing later does nothing."""
    handle.discard()
    handle.closed = True


def _write_whole(directory: str, tmp: str, path: str, parts: list[bytes]) -> None:
    """Write ``parts`` to ``tmp``, fsync, and rename it to ``path``; no ``tmp`` left on error."""
    os.makedirs(directory, exist_ok=True)
    try:
        with open(tmp, "xb") as handle:
            handle.writelines(parts)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _discard_local(handle: BinaryIO, tmp: str) -> None:
    handle.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def create_storage(url: str, **options: Any) -> FsspecStorage:
    """The ``fsspec`` entry point: any URL whose protocol fsspec knows."""
    return FsspecStorage(url, **options)
