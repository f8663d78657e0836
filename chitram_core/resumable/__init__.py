"""Resumable uploads: an image sent in chunks over as many requests (and processes) as it
takes, then made by the same ingest pipeline as any other upload."""

from chitram_core.resumable.chunks import CHECKSUM_ALGORITHMS, Checksum
from chitram_core.resumable.service import CreationCheck, PartsSource, ResumableUpload, Uploads

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "Checksum",
    "CreationCheck",
    "PartsSource",
    "ResumableUpload",
    "Uploads",
]
