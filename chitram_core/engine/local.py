"""A stored object handed to the image engine as a file its job reads itself.

The server process streams: a large image's bytes go from storage to a file on this host a
chunk at a time (or are already one, on a local store) and the job, in its worker, reads them
there. Sending the bytes instead would hold the whole file in the server twice over (the bytes
and the pickled message), and glibc keeps much of such memory after it is freed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread

from chitram_core.engine.work import LocalFile
from chitram_core.storage import Storage, StorageKeyNotFound

COPY_CHUNK = 1024 * 1024
"""The chunk size a stored object is copied to a local file in (at most this much in memory)."""


@contextlib.asynccontextmanager
async def local_file(storage: Storage, key: str) -> AsyncIterator[LocalFile]:
    """``key``'s bytes as a file on this host: the store's own file when it is a local
    directory (``local_path``), else a temporary copy written chunk by chunk and removed on
    exit. Either way the server holds at most :data:`COPY_CHUNK` of it at a time.
    :class:`~chitram_core.storage.StorageKeyNotFound` when the object is missing."""
    local = getattr(storage, "local_path", None)
    path = local(key) if local is not None else None
    if isinstance(path, str):
        if not await anyio.to_thread.run_sync(os.path.isfile, path):
            raise StorageKeyNotFound(key)
        yield LocalFile(path)
        return
    fd, scratch = await anyio.to_thread.run_sync(_scratch)
    try:
        async with await anyio.open_file(fd, "wb", closefd=True) as out:
            async for chunk in storage.read(key, chunk_size=COPY_CHUNK):
                await out.write(chunk)
        yield LocalFile(scratch)
    finally:
        with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
            await anyio.to_thread.run_sync(os.unlink, scratch)


def _scratch() -> tuple[int, str]:
    return tempfile.mkstemp(prefix="chitram-job-")
