"""The size limit: a declared length past it is refused before a byte is read, a stream the
moment it passes it (``FILE_TOO_LARGE``).

Rate limits, per-user fair share and the wait for room are decided by the host from the request
headers before the body is read (see docs/decisions.md); the quota's declared-length check is
the stage after this one (``quota.py``).
"""

from __future__ import annotations

from chitram_core.errors import FileTooLarge
from chitram_core.ingest.upload import Tapped, Upload
from chitram_core.settings import Settings


class SizeLimit:
    def __init__(self, settings: Settings) -> None:
        self.default = settings.max_upload_bytes

    async def run(self, upload: Upload) -> None:
        limit = upload.max_bytes or self.default
        declared = upload.source.declared_length
        if declared is not None and declared > limit:
            raise _too_large(limit)
        upload.stream = Tapped(upload.stream, _Counter(limit))


class _Counter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0

    def __call__(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _too_large(self.limit)


def _too_large(limit: int) -> FileTooLarge:
    return FileTooLarge(f"The file is larger than the {limit} byte limit", max_bytes=limit)
