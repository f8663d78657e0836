"""Pure image knowledge: sniffing, header probing, limits, verification, metadata, thumbnails.

No storage, database or web framework here. The blocking parts (``verify``,
``render_thumbnail``) are plain functions meant for worker threads; everything else is cheap
byte parsing that is safe on the event loop.
"""

from chitram_core.images.formats import (
    HEAD_BYTES,
    ImageFormat,
    ImageInfo,
    check_limits,
    probe,
    sniff,
    verify,
)
from chitram_core.images.metadata import Edit, MetadataScanner, apply_edits, strip_bytes
from chitram_core.images.thumbnails import (
    RenderedThumbnail,
    ThumbnailParams,
    render_thumbnail,
)

__all__ = [
    "HEAD_BYTES",
    "Edit",
    "ImageFormat",
    "ImageInfo",
    "MetadataScanner",
    "RenderedThumbnail",
    "ThumbnailParams",
    "apply_edits",
    "check_limits",
    "probe",
    "render_thumbnail",
    "sniff",
    "strip_bytes",
    "verify",
]
