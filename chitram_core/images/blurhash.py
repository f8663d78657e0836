"""BlurHash encoding (https://blurha.sh, Wolt's format) of a small Pillow image, in pure Python.

The format: the image in linear light is projected on ``x_components * y_components`` cosine
bases; the average colour (DC) is sent as sRGB, the other (AC) factors quantised to 19 levels
per channel relative to the largest one, all in base 83.

The straightforward encoder evaluates ``cos`` for every pixel and component (about 10 ms for a
32x24 image with 4x3 components, as much as verifying and thumbnailing the upload together).
Here the basis is separable, so each row is first reduced against the ``x_components`` column
cosines (``sum(map(mul, ...))`` runs in C) and those row sums against the row cosines; the
sRGB → linear conversion is a 256-entry table. Same result, ~20x less time.
"""

from __future__ import annotations

import math
from operator import mul

from PIL import Image

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _srgb_to_linear(value: int) -> float:
    v = value / 255.0
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


_LINEAR = [_srgb_to_linear(v) for v in range(256)]


def _linear_to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * math.pow(v, 1 / 2.4) - 0.055) * 255 + 0.5)


def _base83(value: int, length: int) -> str:
    digits = []
    for _ in range(length):
        value, digit = divmod(value, 83)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def _quantise_ac(value: float, scale: float) -> int:
    v = value / scale
    root = math.copysign(math.pow(abs(v), 0.5), v)
    return int(max(0.0, min(18.0, math.floor(root * 9.0 + 9.5))))


def encode(image: Image.Image, x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash of ``image`` (converted to RGB; meant for images of a few dozen pixels)."""
    if not (1 <= x_components <= 9 and 1 <= y_components <= 9):
        raise ValueError("component counts must be between 1 and 9")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    if width < 1 or height < 1:
        raise ValueError("the image is empty")
    cos_x = [[math.cos(math.pi * i * x / width) for x in range(width)] for i in range(x_components)]
    cos_y = [
        [math.cos(math.pi * j * y / height) for y in range(height)] for j in range(y_components)
    ]
    factors: list[tuple[float, float, float]] = []
    channels = []
    for band in rgb.split():
        linear = list(map(_LINEAR.__getitem__, band.tobytes()))
        rows = [linear[y * width : (y + 1) * width] for y in range(height)]
        # row_sums[i][y]: row y reduced against column cosine i
        channels.append([[sum(map(mul, cx, row)) for row in rows] for cx in cos_x])
    scale = 1.0 / (width * height)
    for j in range(y_components):
        cy = cos_y[j]
        for i in range(x_components):
            norm = (1.0 if i == 0 and j == 0 else 2.0) * scale
            r, g, b = (norm * sum(map(mul, cy, channel[i])) for channel in channels)
            factors.append((r, g, b))
    dc, ac = factors[0], factors[1:]
    out = [_base83((x_components - 1) + (y_components - 1) * 9, 1)]
    if ac:
        largest = max(abs(c) for factor in ac for c in factor)
        quantised_max = int(max(0, min(82, math.floor(largest * 166 - 0.5))))
        ac_scale = (quantised_max + 1) / 166.0
        out.append(_base83(quantised_max, 1))
    else:
        ac_scale = 1.0
        out.append(_base83(0, 1))
    out.append(
        _base83(
            (_linear_to_srgb(dc[0]) << 16) + (_linear_to_srgb(dc[1]) << 8) + _linear_to_srgb(dc[2]),
            4,
        )
    )
    for r, g, b in ac:
        value = (
            _quantise_ac(r, ac_scale) * 19 * 19
            + _quantise_ac(g, ac_scale) * 19
            + _quantise_ac(b, ac_scale)
        )
        out.append(_base83(value, 2))
    return "".join(out)
