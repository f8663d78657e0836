"""Copy every stored object from one store to another, verified and resumable.

Each object is copied on its own, so a run that stops anywhere can be started again: an object
already at the destination with the right content is skipped, anything else is (re)copied.
"Right content" is proved by hashing what the destination holds: for a blob, the SHA-256 must be
the one in its key (content addressing: that is also the database's ``blobs.sha256``); for any
other object (thumbnails, and whatever else lives in the store) it must equal the source's.
A copy is written through the destination's atomic ``write`` and then read back and hashed,
so a destination object is either absent, being replaced, or verified.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import anyio
import attrs

from chitram_core.storage.base import Storage, StorageError

log = logging.getLogger(__name__)

SKIP_PREFIXES = ("tmp/", "health/")
"""Uploads in flight and health probes: nothing worth moving."""

_BLOB_KEY = re.compile(r"blobs/[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})")

Progress = Callable[[str, int, int | None], None]


class CorruptObject(StorageError):
    """An object's bytes are not what its key (or the source) says they are."""


@attrs.define
class MigrationReport:
    total: int = 0
    copied: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    failed: list[tuple[str, str]] = attrs.field(factory=list)
    missing: list[str] = attrs.field(factory=list)
    """Keys the database references that the source store does not have."""

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> dict[str, Any]:
        """The counts by name (what ``chitram storage migrate`` prints): see :func:`describe`."""
        return describe(self)


def expected_sha256(key: str) -> str | None:
    """The SHA-256 a content-addressed key promises (blobs), else None."""
    m = _BLOB_KEY.fullmatch(key)
    return m.group(1) if m else None


async def _digest(storage: Storage, key: str) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    async for chunk in storage.read(key):
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


async def migrate_storage(
    source: Storage,
    dest: Storage,
    *,
    referenced: Iterable[str] = (),
    concurrency: int = 4,
    trust_existing: bool = False,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy every object of ``source`` (but ``tmp/`` and ``health/``) to ``dest``.

    ``referenced`` are the keys the database points at; any the source lacks are reported in
    ``missing`` (they cannot be copied, and would 404 either way). ``trust_existing`` skips a
    destination object of the right size without reading it back (a quick second pass).
    """
    report = MigrationReport()
    keys = [k async for k in source.keys("") if not k.startswith(SKIP_PREFIXES)]
    report.total = len(keys)
    listed = set(keys)
    report.missing = sorted(k for k in referenced if k not in listed)
    for key in report.missing:
        log.warning("the database references %s but the source store does not have it", key)
    pending = iter(keys)
    done = 0

    async def worker() -> None:
        nonlocal done
        for key in pending:  # shared: each key goes to exactly one worker
            try:
                copied = await _migrate_one(source, dest, key, trust_existing=trust_existing)
            except (StorageError, OSError) as exc:
                report.failed.append((key, f"{type(exc).__name__}: {exc}"))
                log.error("could not migrate %s: %s", key, exc)
            else:
                if copied is None:
                    report.skipped += 1
                else:
                    report.copied += 1
                    report.bytes_copied += copied
            done += 1
            if progress is not None:
                progress("copy", done, report.total)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, concurrency)):
            tg.start_soon(worker)
    report.failed.sort()
    return report


async def _migrate_one(
    source: Storage, dest: Storage, key: str, *, trust_existing: bool
) -> int | None:
    """Bytes copied, or None when the destination already held the verified object."""
    expected = expected_sha256(key)
    if await dest.exists(key):
        if trust_existing:
            if await dest.size(key) == await source.size(key):
                return None
        else:
            have, _ = await _digest(dest, key)
            want = expected if expected is not None else (await _digest(source, key))[0]
            if have == want:
                return None
        log.info("%s at the destination differs from the source; copying it again", key)
    hasher = hashlib.sha256()

    async def checked() -> AsyncIterator[bytes]:
        async for chunk in source.read(key):
            hasher.update(chunk)
            yield chunk
        if expected is not None and hasher.hexdigest() != expected:
            # Raised inside the write: the destination's atomic write publishes nothing.
            raise CorruptObject(
                f"the source's bytes hash to {hasher.hexdigest()}, not the key's {expected}"
            )

    written = await dest.write(key, checked())
    got, size = await _digest(dest, key)
    if got != hasher.hexdigest() or size != written:
        raise CorruptObject(
            f"the destination's copy hashes to {got}, the source's to {hasher.hexdigest()}"
        )
    return written


def describe(report: MigrationReport) -> dict[str, Any]:
    return {
        "objects": report.total,
        "copied": report.copied,
        "skipped": report.skipped,
        "bytes_copied": report.bytes_copied,
        "failed": len(report.failed),
        "missing_from_source": len(report.missing),
    }
