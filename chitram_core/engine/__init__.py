"""The image-work engine: every decode of user bytes runs here, bounded and killable.

See docs/architecture.md ("Image work") and docs/decisions.md ("Image work in our own small
process pool").
"""

from chitram_core.engine.budget import MemoryBudget
from chitram_core.engine.jobs import decode_cost, thumbnail_image, verify_image
from chitram_core.engine.pool import ImageEngine

__all__ = ["ImageEngine", "MemoryBudget", "decode_cost", "thumbnail_image", "verify_image"]
