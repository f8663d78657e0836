"""Storage for an upload: its temporary objects, and the spool that writes the body to one.

The body is written to ``tmp/<uuid>`` as it arrives (driving the stream stages before it);
the content-addressed final key ``blobs/...`` is taken in the record transaction
(:mod:`chitram_core.ingest.record`), where an existing blob is deduplicated instead. Temporary
objects are listed on the :class:`Upload` as they are made, so the pipeline can remove them.
"""

from __future__ import annotations

import logging
import uuid

from chitram_core.errors import ServiceUnavailable
from chitram_core.ingest.upload import Upload
from chitram_core.storage import Storage, StorageError

log = logging.getLogger(__name__)


def temporary_key(upload: Upload) -> str:
    """A new temporary object's key, listed on the upload before anything is written to it."""
    key = f"tmp/{uuid.uuid4().hex}"
    upload.temporary.append(key)
    return key


class Spool:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def run(self, upload: Upload) -> None:
        key = upload.stored_key = temporary_key(upload)
        try:
            await self.storage.write(key, upload.stream)
        except StorageError as exc:
            # An outage of the store, not a fault of this request or of the code: 503, retry.
            raise ServiceUnavailable("Storage is not accepting writes", retry_after=5) from exc


async def discard(storage: Storage, keys: list[str]) -> None:
    """Remove temporary objects; a failure is only logged (the sweep removes them later)."""
    for key in keys:
        try:
            await storage.delete(key)
        except (StorageError, OSError) as exc:
            log.warning("could not remove temporary object %s: %s (the sweep will)", key, exc)
