"""After the commit: what the committed upload sets going. Nothing here can undo it.

Metrics (stored or deduplicated), the cached rows of other images with these bytes when the
upload made their pending thumbnail ready, leftover temporary objects removed, and one wake of
the job runner when the upload recorded a job for it (a tag job, or the thumbnail's).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from chitram_core.ingest.store import discard
from chitram_core.ingest.upload import Upload
from chitram_core.observe import Observer
from chitram_core.storage import Storage

log = logging.getLogger(__name__)


class AfterCommit:
    """``on_ready(sha256)``: a pending thumbnail of these bytes became ready (the thumbnailer's
    hook, which drops cached rows). ``wake()``: the job runner's. ``tagging``: every upload
    records a tag job."""

    def __init__(
        self,
        storage: Storage,
        *,
        wake: Callable[[], None],
        on_ready: Callable[[str], Awaitable[None]],
        tagging: bool,
        observer: Observer | None = None,
    ) -> None:
        self.storage = storage
        self.observer = observer if observer is not None else Observer()
        self.wake = wake
        self.on_ready = on_ready
        self.tagging = tagging

    async def run(self, upload: Upload) -> None:
        image = upload.image()
        self.observer.upload("stored" if upload.new_blob else "deduplicated")
        if upload.thumbnail_outcome == "readied":
            try:
                await self.on_ready(image.sha256)
            except Exception:
                log.warning("could not refresh cached images of %s", image.sha256, exc_info=True)
        # A moved object has nothing left to remove.
        await discard(self.storage, [key for key in upload.temporary if key not in upload.moved])
        # The upload's jobs are committed by now; other uploads leave the runner to its poll
        # (a wake costs a query per job kind).
        if self.tagging or not image.thumbnail_ready:
            self.wake()
