"""The ingest pipeline: an upload from its source to its committed record, stage by stage.

See :mod:`chitram_core.ingest.pipeline` and docs/architecture.md ("Upload flow").
"""

from chitram_core.ingest.pipeline import Ingest, build_ingest
from chitram_core.ingest.source import BodySource, Source
from chitram_core.ingest.upload import Stage, Upload

__all__ = ["BodySource", "Ingest", "Source", "Stage", "Upload", "build_ingest"]
