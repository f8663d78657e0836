"""``Ingest``: the upload as a list of stages, composed once.

::

    source ─► SizeLimit ─► QuotaCheck ─► StreamChecks ─► Spool ─► HeaderChecks ─► ImageJob
                                                                                   │
    AfterCommit ◄─ Record ◄─ StripMetadata ◄─ [ModerationGate] ◄─ StageThumbnail ◄─┘

Sources: :class:`~chitram_core.ingest.source.BodySource` (bytes, a file, a multipart part) and
:class:`~chitram_core.fetch.UrlSource` (a fetched URL). The moderation gate is there only when
moderators are configured.

Each stage has one job and reads and fills in the :class:`Upload` (see docs/architecture.md).
The stream stages (size limit, stream checks) wrap the body; it flows when the spool writes it
to a temporary object. A stage that refuses raises a ``ChitramError``: every temporary object
of the upload is removed (shielded from cancellation) and nothing is recorded, since only the
record stage writes rows and it does so in one transaction. New stages (a moderation gate) go
into :func:`build_ingest`'s list where they belong; new sources are new
:class:`~chitram_core.ingest.source.Source` implementations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio

from chitram_core.db import Database
from chitram_core.engine.base import Engine
from chitram_core.errors import ChitramError
from chitram_core.ingest.after import AfterCommit
from chitram_core.ingest.checks import HeaderChecks, StreamChecks, StripMetadata
from chitram_core.ingest.image_job import ImageJob, StageThumbnail
from chitram_core.ingest.limits import SizeLimit
from chitram_core.ingest.moderate import ModerationGate
from chitram_core.ingest.quota import QuotaCheck
from chitram_core.ingest.record import Record, RecordHook
from chitram_core.ingest.source import Source
from chitram_core.ingest.store import Spool, discard
from chitram_core.ingest.upload import Stage, Upload
from chitram_core.models import Image
from chitram_core.moderation import Moderator
from chitram_core.observe import Observer
from chitram_core.quotas import Quotas
from chitram_core.settings import Settings
from chitram_core.storage import Storage
from chitram_core.thumbnailer import Thumbnailer


class Ingest:
    def __init__(
        self,
        storage: Storage,
        stages: Sequence[Stage],
        after: AfterCommit,
        *,
        observer: Observer | None = None,
    ) -> None:
        self.storage = storage
        self.observer = observer if observer is not None else Observer()
        self.stages = tuple(stages)
        self.after = after

    async def upload(self, source: Source, *, max_bytes: int | None = None) -> Image:
        """Validate, store and record the source's image; see the module docstring."""
        upload = Upload(source=source, max_bytes=max_bytes, stream=source.chunks())
        try:
            for stage in self.stages:
                await stage.run(upload)
        except BaseException as exc:
            self.observer.upload(_upload_result(exc))
            with anyio.CancelScope(shield=True):
                await discard(self.storage, upload.temporary)
            raise
        await self.after.run(upload)
        return upload.image()


def build_ingest(
    settings: Settings,
    database: Database,
    storage: Storage,
    *,
    engine: Engine,
    thumbnailer: Thumbnailer,
    record_hooks: Sequence[RecordHook] = (),
    wake: Callable[[], None],
    tagging: bool = False,
    observer: Observer | None = None,
    quotas: Quotas | None = None,
    moderators: Sequence[Moderator] = (),
) -> Ingest:
    """The upload's stages in the order they run, composed once.

    The stream stages come before the spool that drives them; a stage that must see the
    verified image (a moderation gate) goes after ``ImageJob``; one that must know the size
    before the body is read (the quota's declared-length check) next to ``SizeLimit``.
    ``Record`` is last: no stage runs after rows exist; it charges the quota with the exact
    size in its transaction.
    """
    observer = observer if observer is not None else Observer()
    at_upload = thumbnailer.params if settings.thumbnail_at_upload else None
    stages: list[Stage] = [
        SizeLimit(settings),  # limits.py
        *([QuotaCheck(quotas)] if quotas is not None else []),  # quota.py
        StreamChecks(settings),  # checks.py
        Spool(storage),  # store.py: drives the two above
        HeaderChecks(settings),  # checks.py
        ImageJob(settings, storage, engine, thumbnail=at_upload, observer=observer),  # image_job.py
        StageThumbnail(storage),  # image_job.py
        StripMetadata(storage, observer=observer),  # checks.py: applies the job's edits
        Record(database, storage, thumbnailer, record_hooks, quotas=quotas),  # record.py
    ]
    if moderators:  # moderate.py: on the verified image, before anything is recorded
        stages.insert(len(stages) - 2, ModerationGate(settings, storage, engine, moderators))
    after = AfterCommit(
        storage, wake=wake, on_ready=thumbnailer.on_ready, tagging=tagging, observer=observer
    )
    return Ingest(storage, stages, after, observer=observer)


def _upload_result(exc: BaseException) -> str:
    """The ``chitram_uploads_total`` label for a failed upload: a small closed set."""
    if isinstance(exc, ChitramError):
        return exc.code.lower()
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled"
    return "error"
