"""Storage garbage collection: queued bytes removed, and bytes no row names found.

The database is the source of truth. A delete queues its storage keys in ``pending_deletions``
in its own transaction, then asks :class:`ByteRemover` to remove them; what storage refuses
stays queued for the sweep. The sweep also lists storage and queues every object no row names
(an upload that crashed between its write and its row), once it is old enough not to be an
upload still in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from chitram_core.db import Database, deletions
from chitram_core.errors import ChitramError
from chitram_core.storage import Storage, StorageError

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: how far a long operation is (``total`` None if unknown)."""

ORPHAN_PREFIXES = ("blobs", "thumbnails", "tmp", "variants")


class ByteRemover:
    """Removes queued storage objects without racing an upload that revives the same key."""

    def __init__(self, database: Database, storage: Storage) -> None:
        self.db = database
        self.storage = storage

    async def remove(self, key: str) -> bool:
        """True when the bytes are gone (or were revived); False leaves the key queued."""
        try:
            async with self.db.transaction() as conn:
                if not await deletions.lock(conn, key):
                    return True
                if not await deletions.key_is_live(conn, key):
                    await self.storage.delete(key)
                await deletions.forget(conn, key)
            return True
        except (StorageError, OSError) as exc:
            log.warning("storage could not remove %s (%s); it stays queued", key, exc)
            await self._note_failure(key, exc)
            return False

    async def _note_failure(self, key: str, exc: BaseException) -> None:
        try:
            async with self.db.transaction() as conn:
                await deletions.note_failure(conn, key, f"{type(exc).__name__}: {exc}")
        except ChitramError:
            raise
        except Exception:  # the note is best effort; the key is still queued
            log.exception("could not record the failed removal of %s", key)

    async def drain(self, limit: int = 1000, progress: Progress | None = None) -> tuple[int, int]:
        """Retry queued removals; (removed, still queued)."""
        async with self.db.connect() as conn:
            keys = await deletions.oldest(conn, limit)
        removed = 0
        for done, key in enumerate(keys, 1):
            removed += await self.remove(key)
            if progress is not None:
                progress("remove", done, len(keys))
        return removed, len(keys) - removed


class Collector:
    """Finds stored objects that no row names and queues them for :class:`ByteRemover`."""

    def __init__(self, database: Database, storage: Storage) -> None:
        self.db = database
        self.storage = storage

    async def queue_orphans(self, older_than: float, progress: Progress | None = None) -> int:
        """Queue every object under the managed prefixes that no row names and that is at
        least ``older_than`` seconds old; how many were queued."""
        async with self.db.connect() as conn:
            live = await deletions.live_keys(conn)
        candidates: list[str] = []
        listed = 0
        for prefix in ORPHAN_PREFIXES:
            async for key in self.storage.keys(prefix):
                listed += 1
                if progress is not None:
                    progress("scan", listed, None)
                if key not in live and await self._old_enough(key, older_than):
                    candidates.append(key)
        if candidates:
            async with self.db.transaction() as conn:
                await deletions.record(conn, candidates)
        return len(candidates)

    async def _old_enough(self, key: str, older_than: float) -> bool:
        if older_than <= 0:
            return True
        when: datetime | None = await self.storage.modified(key)
        if when is None:  # unknown age (a store that cannot tell): it could be an upload in flight
            return False
        return (datetime.now(UTC) - when).total_seconds() >= older_than
