"""The ``palette`` tagger: local, no network. Orientation and up to three dominant colours."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence

import anyio.to_thread
from PIL import Image

from chitram_core.errors import InvalidImage
from chitram_core.images.codecs import PILLOW_FORMATS
from chitram_core.images.formats import PILLOW_ERRORS
from chitram_core.models import Check, SuggestedTag
from chitram_core.settings import Settings

PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "gray": (128, 128, 128),
    "red": (200, 30, 30),
    "orange": (240, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 160, 60),
    "teal": (20, 140, 140),
    "blue": (30, 80, 200),
    "purple": (120, 50, 160),
    "pink": (240, 130, 180),
    "brown": (120, 75, 40),
}
SQUARE_TOLERANCE = 0.05
MIN_SHARE = 0.15
SAMPLE = 48


def _nearest(rgb: tuple[int, int, int]) -> str:
    r, g, b = rgb
    return min(
        PALETTE,
        key=lambda n: (
            (PALETTE[n][0] - r) ** 2 + (PALETTE[n][1] - g) ** 2 + (PALETTE[n][2] - b) ** 2
        ),
    )


def palette_tags(data: bytes) -> list[SuggestedTag]:
    """SYNC: orientation (confidence 95) and colours covering at least 15% of the picture
    (confidence 70 + 30 x share)."""
    try:
        with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as img:
            width, height = img.size
            img.draft("RGB", (SAMPLE, SAMPLE))
            small = img.convert("RGB").resize((SAMPLE, SAMPLE), Image.Resampling.BOX)
    except PILLOW_ERRORS as exc:
        raise InvalidImage(f"The palette tagger cannot read the image: {exc}") from None
    ratio = width / height
    if abs(ratio - 1) <= SQUARE_TOLERANCE:
        orientation = "square"
    else:
        orientation = "landscape" if ratio > 1 else "portrait"
    tags = [SuggestedTag(orientation, 95, "orientation")]
    counts: Counter[str] = Counter()
    for count, rgb in small.getcolors(SAMPLE * SAMPLE) or []:
        counts[_nearest(rgb)] += count  # type: ignore[arg-type]
    total = SAMPLE * SAMPLE
    for name, count in counts.most_common(3):
        share = count / total
        if share >= MIN_SHARE:
            tags.append(SuggestedTag(name, min(100, 70 + round(30 * share)), "color"))
    return tags


class PaletteTagger:
    name = "palette"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    async def suggest(self, image: bytes, content_type: str) -> Sequence[SuggestedTag]:
        return await anyio.to_thread.run_sync(palette_tags, image)

    async def health(self) -> Check:
        return Check(status="healthy", latency_ms=0.0, detail="local")


def create_tagger(settings: Settings) -> PaletteTagger:
    return PaletteTagger(settings)
