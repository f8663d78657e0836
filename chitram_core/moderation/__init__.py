"""Moderators (plugin group ``chitram.moderators``): a gate every upload passes before it is kept.

A moderator is any object with a ``name`` and ``async check(ModerationInput) -> Verdict``;
``async close()`` is optional. The entry point is a factory ``(settings) -> Moderator``.
``check`` sees the verified upload as a JPEG of at most :data:`MODERATION_MAX_SIDE` pixels a side
with no metadata (made in the image engine), plus what is known of it. A moderator that cannot
answer raises :class:`~chitram_core.errors.ModeratorUnavailable` (anything else it raises is
treated the same way and logged): the upload is refused with 503 ``PROVIDER_UNAVAILABLE``, or
accepted when ``CHITRAM_MODERATION_FAIL_OPEN`` is on. A ``reject`` verdict refuses it with 422
``CONTENT_REJECTED`` and nothing of it is kept. The gate is the ingest stage
:class:`chitram_core.ingest.moderate.ModerationGate`.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import attrs

from chitram_core import plugins
from chitram_core.settings import Settings

MODERATION_MAX_SIDE = 1024


@attrs.frozen
class ModerationInput:
    """What a moderator judges: ``image`` is the metadata-free JPEG preview; the rest describes
    the upload as received."""

    image: bytes
    content_type: str
    """The upload's type, from its bytes (``image/png``...); the preview is always JPEG."""
    width: int
    height: int
    size: int
    sha256: str
    filename: str | None = None
    owner_id: str | None = None


@attrs.frozen
class Verdict:
    decision: Literal["allow", "reject"]
    reason: str | None = None

    @classmethod
    def allow(cls) -> Verdict:
        return cls("allow")

    @classmethod
    def reject(cls, reason: str) -> Verdict:
        return cls("reject", reason)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


@runtime_checkable
class Moderator(Protocol):
    name: str

    async def check(self, item: ModerationInput) -> Verdict: ...


def load_moderators(settings: Settings) -> list[Moderator]:
    """The moderators named in ``CHITRAM_MODERATORS``, in order (a missing one: PluginError)."""
    return [plugins.load(plugins.MODERATORS, name)(settings) for name in settings.moderators]


async def close_moderator(moderator: Moderator) -> None:
    close = getattr(moderator, "close", None)
    if close is not None:
        await close()


__all__ = [
    "MODERATION_MAX_SIDE",
    "ModerationInput",
    "Moderator",
    "Verdict",
    "close_moderator",
    "load_moderators",
]
