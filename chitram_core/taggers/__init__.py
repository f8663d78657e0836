"""Taggers (plugin group ``chitram.taggers``): suggest tags for an image.

A tagger is any object with a ``name``, ``async suggest(image, content_type)`` returning
:class:`~chitram_core.models.SuggestedTag` values, and ``async health()`` returning a
:class:`~chitram_core.models.Check`; ``async close()`` is optional. The entry point is a factory
``(settings) -> Tagger``. ``suggest`` receives the image as Chitram prepared it for a model: a
JPEG of at most 512 px a side with no metadata (see :func:`chitram_core.images.model_input`).

A tagger that cannot answer now raises :class:`~chitram_core.errors.TaggerUnavailable`; the
job is retried with back-off. Anything else it raises is treated the same way and logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from chitram_core import plugins
from chitram_core.models import Check, SuggestedTag
from chitram_core.settings import Settings


@runtime_checkable
class Tagger(Protocol):
    """Suggests tags for an image: the ``chitram.taggers`` plugin protocol.

    A factory ``create_tagger(settings)`` makes one; Chitram keeps the most confident
    suggestions (``CHITRAM_TAGS_MAX_AI``, ``CHITRAM_TAGS_MIN_CONFIDENCE``).
    """

    name: str
    """The plugin name; AI tags record it."""

    async def suggest(self, image: bytes, content_type: str) -> Sequence[SuggestedTag]:
        """Tags for the image's bytes; ``TaggerUnavailable`` when it cannot answer now."""
        ...

    async def health(self) -> Check:
        """Whether the tagger (and any service behind it) can answer."""
        ...


def load_taggers(settings: Settings) -> list[Tagger]:
    """The taggers named in ``CHITRAM_TAGGERS``, in order (a missing one is a PluginError)."""
    loaded: list[Tagger] = []
    for name in settings.taggers:
        factory = plugins.load(plugins.TAGGERS, name)
        loaded.append(factory(settings))
    return loaded


async def close_tagger(tagger: Tagger) -> None:
    close = getattr(tagger, "close", None)
    if close is not None:
        await close()


__all__ = ["Tagger", "close_tagger", "load_taggers"]
