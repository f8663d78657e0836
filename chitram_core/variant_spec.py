"""The variant spec grammar: :class:`VariantSpec` and :func:`parse_spec`, without Pillow.

A spec is ``-``-joined tokens in one canonical order: ``w<N>``, ``h<N>``, ``cover`` (``contain``
is the default and is not written), a format (``jpeg|png|webp|avif|auto``), ``q<N>``. A spec in
any other order or spelling is refused with the canonical form in the message, so one variant has
exactly one name (one signature, one cache entry, one stored object).

Settings validate ``variant_presets`` with it and :mod:`chitram_core.images.variants` renders
what it describes; it lives apart from both so that reading the settings never imports Pillow
and the image package never imports the settings.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from chitram_core.errors import InvalidRequest

MAX_SIDE = 16384
"""The largest ``w``/``h`` a spec may ask for (never upscaled, so in practice the original's)."""
FITS = ("contain", "cover")
OUTPUT_FORMATS = ("jpeg", "png", "webp", "avif")
FORMATS = (*OUTPUT_FORMATS, "auto")
_TOKEN = re.compile(r"([wqh])([0-9]{1,6})")


@attrs.frozen
class VariantSpec:
    """A parsed spec. ``format`` None means the original's; ``quality`` None the default."""

    width: int | None = None
    height: int | None = None
    fit: str = "contain"
    format: str | None = None
    quality: int | None = None

    def __attrs_post_init__(self) -> None:
        for name, value, top in (
            ("w", self.width, MAX_SIDE),
            ("h", self.height, MAX_SIDE),
            ("q", self.quality, 100),
        ):
            if value is not None and not 1 <= value <= top:
                raise InvalidRequest(
                    f"'{name}' must be between 1 and {top}, got {value}", field="spec"
                )
        if self.fit not in FITS:
            raise InvalidRequest(f"fit must be contain or cover, got {self.fit!r}", field="spec")
        if self.format is not None and self.format not in FORMATS:
            raise InvalidRequest(
                f"format must be one of {', '.join(FORMATS)}, got {self.format!r}", field="spec"
            )
        if self.fit == "cover" and (self.width is None or self.height is None):
            raise InvalidRequest("'cover' needs both a width and a height", field="spec")

    def __str__(self) -> str:
        tokens: list[str] = []
        if self.width is not None:
            tokens.append(f"w{self.width}")
        if self.height is not None:
            tokens.append(f"h{self.height}")
        if self.fit != "contain":
            tokens.append(self.fit)
        if self.format is not None:
            tokens.append(self.format)
        if self.quality is not None:
            tokens.append(f"q{self.quality}")
        return "-".join(tokens) or "original"

    def with_format(self, fmt: str | None) -> VariantSpec:
        return attrs.evolve(self, format=fmt)


def parse_spec(text: str) -> VariantSpec:
    """Parse a spec; anything malformed or non-canonical is 400 ``INVALID_REQUEST``."""
    if not isinstance(text, str) or not text or len(text) > 64:
        raise InvalidRequest("The variant spec is empty or too long", field="spec")
    if text == "original":
        return VariantSpec()
    values: dict[str, Any] = {}
    for token in text.split("-"):
        m = _TOKEN.fullmatch(token)
        if m:
            name = {"w": "width", "h": "height", "q": "quality"}[m.group(1)]
            if m.group(2).startswith("0"):
                raise InvalidRequest(f"Bad number in spec token {token!r}", field="spec")
            value: Any = int(m.group(2))
        elif token in FITS:
            name, value = "fit", token
        elif token in FORMATS:
            name, value = "format", token
        else:
            raise InvalidRequest(
                f"Unknown spec token {token!r}: use w<N>, h<N>, contain|cover, "
                f"{'|'.join(FORMATS)}, q<N>, joined by '-'",
                field="spec",
            )
        if name in values:
            raise InvalidRequest(f"The spec sets {name} twice", field="spec")
        values[name] = value
    spec = VariantSpec(**values)
    if str(spec) != text:
        raise InvalidRequest(
            f"Write this spec as {str(spec)!r} (tokens in the order w, h, fit, format, q; "
            "'contain' is the default and is left out)",
            field="spec",
            canonical=str(spec),
        )
    return spec


def spec_for(
    *,
    width: int | None = None,
    height: int | None = None,
    fit: str = "contain",
    format: str | None = None,
    quality: int | None = None,
) -> VariantSpec:
    return VariantSpec(
        width=width,
        height=height,
        fit=fit,
        format=format.lower() if format is not None else None,
        quality=quality,
    )
