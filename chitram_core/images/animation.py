"""Animated variants: an animated GIF, WebP, PNG or AVIF, resized frame by frame into animated
WebP.

Frames are decoded, resized and handed to Pillow's WebP animation encoder one at a time, so a
render holds the source canvas, one resized frame and the encoder's output-sized buffers, not
every frame: :class:`_ResizedFrames` is an image whose ``seek`` produces the next resized frame
on demand, and :class:`_Durations` reads each frame's duration as the encoder asks for it. The
frame count was bounded at upload (``FrameBudget``), so the time is bounded too.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image


def is_animated(img: Image.Image) -> bool:
    return bool(getattr(img, "is_animated", False)) and getattr(img, "n_frames", 1) > 1


class _ResizedFrames(Image.Image):
    """The frames of ``source`` resized to ``size`` and centre-cropped to ``out``, lazily."""

    def __init__(self, source: Image.Image, size: tuple[int, int], out: tuple[int, int]) -> None:
        super().__init__()
        self.source = source
        self.resize_to = size
        self.out = out
        self.n_frames: int = getattr(source, "n_frames", 1)
        self.current_duration = 0
        self.seek(0)

    def seek(self, frame: int) -> None:
        self.source.seek(frame)
        img = self.source.convert("RGBA").resize(self.resize_to, Image.Resampling.LANCZOS)
        # Read after the decode: AVIF gives a frame's duration only once it is loaded.
        self.current_duration = int(self.source.info.get("duration", 0) or 0)
        if img.size != self.out:
            left = (img.width - self.out[0]) // 2
            top = (img.height - self.out[1]) // 2
            img = img.crop((left, top, left + self.out[0], top + self.out[1]))
        img.load()
        self.im = img.im
        self._mode = img.mode
        self._size = img.size
        self.info = {}

    def tell(self) -> int:
        return int(self.source.tell())


class _Durations(list[int]):
    """The encoder's ``duration`` list: each frame's duration, read when the encoder asks."""

    def __init__(self, frames: _ResizedFrames) -> None:
        super().__init__([0] * frames.n_frames)
        self.frames = frames

    def __getitem__(self, index: Any) -> Any:
        return self.frames.current_duration


def animated_webp(
    source: Image.Image,
    size: tuple[int, int],
    out: tuple[int, int],
    *,
    quality: int,
    lossless: bool,
) -> bytes:
    """``source``'s frames, resized to ``size`` and cropped to ``out``, as an animated WebP."""
    frames = _ResizedFrames(source, size, out)
    buf = io.BytesIO()
    frames.save(
        buf,
        format="WEBP",
        save_all=True,
        duration=_Durations(frames),
        loop=int(source.info.get("loop", 0) or 0),
        quality=quality,
        lossless=lossless,
        method=4,
    )
    return buf.getvalue()
