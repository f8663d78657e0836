"""The image-work engine: every decode of user bytes runs here, bounded and killable.

See docs/architecture.md ("Image work") and docs/decisions.md ("Image work in our own small
process pool"). :class:`Engine` is the interface; :class:`ImageEngine` runs jobs in worker
processes, :class:`InlineEngine` in worker threads.
"""

from chitram_core.engine.base import Engine
from chitram_core.engine.budget import MemoryBudget
from chitram_core.engine.inline import InlineEngine
from chitram_core.engine.pool import ImageEngine
from chitram_core.engine.render import placeholders_async, render_thumbnail_async
from chitram_core.engine.work import decode_cost, thumbnail_image, verify_image

__all__ = [
    "Engine",
    "ImageEngine",
    "InlineEngine",
    "MemoryBudget",
    "decode_cost",
    "placeholders_async",
    "render_thumbnail_async",
    "thumbnail_image",
    "verify_image",
]
