"""Chitram: an embeddable, framework-agnostic async image-hosting SDK.

Names are imported lazily, so ``import chitram_core.storage`` (say, from a plugin) does not
pull in the database, Pillow or the auth providers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chitram_core import errors
    from chitram_core.admin import SweepReport
    from chitram_core.chitram import VERSION, Chitram
    from chitram_core.errors import ChitramError
    from chitram_core.models import (
        HealthReport,
        Image,
        Page,
        Principal,
        Session,
        Thumbnail,
        User,
    )
    from chitram_core.serialization import converter, to_json
    from chitram_core.settings import RateLimit, Settings

_EXPORTS = {
    "VERSION": "chitram_core.chitram",
    "Chitram": "chitram_core.chitram",
    "SweepReport": "chitram_core.admin",
    "ChitramError": "chitram_core.errors",
    "HealthReport": "chitram_core.models",
    "Image": "chitram_core.models",
    "Page": "chitram_core.models",
    "Principal": "chitram_core.models",
    "Session": "chitram_core.models",
    "Thumbnail": "chitram_core.models",
    "User": "chitram_core.models",
    "converter": "chitram_core.serialization",
    "to_json": "chitram_core.serialization",
    "RateLimit": "chitram_core.settings",
    "Settings": "chitram_core.settings",
}

__all__ = [
    "VERSION",
    "Chitram",
    "ChitramError",
    "HealthReport",
    "Image",
    "Page",
    "Principal",
    "RateLimit",
    "Session",
    "Settings",
    "SweepReport",
    "Thumbnail",
    "User",
    "converter",
    "errors",
    "to_json",
]


def __getattr__(name: str) -> Any:
    if name == "errors":
        return import_module("chitram_core.errors")
    if name == "__version__":
        name = "VERSION"
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chitram_core' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
