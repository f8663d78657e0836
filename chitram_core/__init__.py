"""Chitram: an embeddable, framework-agnostic async image-hosting SDK."""

from chitram_core import errors
from chitram_core.chitram import VERSION, Chitram, SweepReport
from chitram_core.errors import ChitramError
from chitram_core.models import HealthReport, Image, Page, Principal, Session, Thumbnail, User
from chitram_core.serialization import converter, to_json
from chitram_core.settings import RateLimit, Settings

__version__ = VERSION
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
