"""The moderation gate: every configured moderator judges the verified upload before it is
recorded (see :mod:`chitram_core.moderation`).

It runs after :class:`~chitram_core.ingest.image_job.ImageJob` (the bytes are a verified image
and metadata is gone) and before anything is recorded, so a rejected upload leaves only
temporary objects, which the pipeline removes. The preview is made by the image engine, in a
worker, never on the event loop. Moderators are asked in order; the first ``reject`` ends it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from chitram_core.engine.base import Engine
from chitram_core.engine.local import local_file
from chitram_core.engine.work import moderation_image, variant_cost
from chitram_core.errors import ChitramError, ContentRejected, ModeratorUnavailable
from chitram_core.ingest.upload import Upload
from chitram_core.moderation import MODERATION_MAX_SIDE, ModerationInput, Moderator, Verdict
from chitram_core.settings import Settings
from chitram_core.storage import Storage

log = logging.getLogger(__name__)


class ModerationGate:
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        engine: Engine,
        moderators: Sequence[Moderator],
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.engine = engine
        self.moderators = tuple(moderators)
        self.fail_open = settings.moderation_fail_open

    async def run(self, upload: Upload) -> None:
        if not self.moderators:
            return
        item = await self.preview(upload)
        for moderator in self.moderators:
            try:
                verdict = await moderator.check(item)
                if not isinstance(verdict, Verdict):
                    raise ModeratorUnavailable(
                        f"it answered {type(verdict).__name__}, not a Verdict"
                    )
            except ContentRejected:
                raise
            except Exception as exc:  # a plugin's failure, whatever it raised, is "down"
                reason = exc.message if isinstance(exc, ChitramError) else type(exc).__name__
                if self.fail_open:
                    log.warning(
                        "moderator %s unavailable (%s); accepted (fail-open)",
                        moderator.name,
                        reason,
                    )
                    continue
                raise ModeratorUnavailable(
                    f"The moderation service is unavailable: {reason}", moderator=moderator.name
                ) from None
            if not verdict.allowed:
                raise ContentRejected(
                    f"The image was rejected: {verdict.reason or 'no reason given'}",
                    moderator=moderator.name,
                )

    async def preview(self, upload: Upload) -> ModerationInput:
        info = upload.header()
        memory = variant_cost(
            info, file_size=upload.size, progressive=upload.progressive, side=MODERATION_MAX_SIDE
        )
        async with (
            contextlib.nullcontext(upload.content)
            if upload.content is not None
            else local_file(self.storage, upload.stored_key)
        ) as content:
            image = await self.engine.run(
                moderation_image,
                content,
                max_pixels=self.settings.max_pixels,
                max_side=MODERATION_MAX_SIDE,
                memory=memory,
                op="moderation",
            )
        owner = upload.source.owner
        return ModerationInput(
            image=image,
            content_type=info.format.mime,
            width=info.width,
            height=info.height,
            size=upload.size,
            sha256=upload.sha256,
            filename=upload.source.filename,
            owner_id=owner.user_id if owner is not None else None,
        )
