"""Which formats this installation can decode: the optional Pillow plugins, registered once.

HEIC/HEIF needs the ``chitram[heif]`` extra (``pillow-heif``, libheif) and JPEG XL the
``chitram[jxl]`` extra (``pillow-jxl-plugin``); AVIF is decoded by Pillow itself (libavif is
in its wheels since 11.2). Importing this module registers whichever plugins are installed, so
every process that decodes (the server, the engine's worker processes) has them. An upload in a
format whose plugin is missing is refused with ``INVALID_FILE_FORMAT`` naming the extra.
"""

from __future__ import annotations

import importlib

from PIL import features

from chitram_core.errors import InvalidFileFormat
from chitram_core.images.kinds import ImageFormat

EXTRAS = {ImageFormat.HEIF: "heif", ImageFormat.JXL: "jxl"}
"""The extra that brings each optional format's decoder."""


def _register_heif() -> bool:
    try:
        pillow_heif = importlib.import_module("pillow_heif")
    except ImportError:
        return False
    # AVIF stays with Pillow's own plugin; libheif here decodes HEVC-coded HEIF only.
    pillow_heif.register_heif_opener(thumbnails=False)
    return True


def _register_jxl() -> bool:
    try:
        importlib.import_module("pillow_jxl")  # registers the JXL plugin on import
    except ImportError:
        return False
    return True


def _avif() -> bool:
    try:
        return bool(features.check("avif"))
    except (ValueError, OSError):  # pragma: no cover - a Pillow without the feature name
        return False


_AVAILABLE: frozenset[ImageFormat] = frozenset(
    {ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.GIF, ImageFormat.WEBP}
    | ({ImageFormat.HEIF} if _register_heif() else set())
    | ({ImageFormat.AVIF} if _avif() else set())
    | ({ImageFormat.JXL} if _register_jxl() else set())
)


def available_formats() -> list[ImageFormat]:
    """The formats this installation accepts, in :class:`ImageFormat` order."""
    return [fmt for fmt in ImageFormat if fmt in _AVAILABLE]


def format_names() -> list[str]:
    """:func:`available_formats` as their stable names (``jpeg``, ``heif``, ...)."""
    return [fmt.value for fmt in available_formats()]


def require(fmt: ImageFormat) -> None:
    """Refuse ``fmt`` when its decoder is not installed, saying which extra brings it."""
    if fmt in _AVAILABLE:
        return
    label = fmt.label
    extra = EXTRAS.get(fmt)
    if extra is None:
        raise InvalidFileFormat(
            f"{label} uploads are not accepted: this Pillow cannot decode {label}",
            format=fmt.value,
        )
    raise InvalidFileFormat(
        f"{label} uploads need the chitram[{extra}] extra, which is not installed on this "
        f"server (pip install 'chitram[{extra}]')",
        format=fmt.value,
        extra=extra,
    )


PILLOW_FORMATS: list[str] = [fmt.pillow_name for fmt in available_formats()]
"""The Pillow plugin names to open user bytes with: only the accepted, installed formats."""
