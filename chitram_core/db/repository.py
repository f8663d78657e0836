"""Kept for ``chitram_core.thumbnailer``, which imports ``insert_or_ignore`` from here.

The SQL that lived here is now one module per aggregate: ``chitram_core.db.images``,
``blobs``, ``deletions`` (and ``upsert`` for ``insert_or_ignore``). Remove this module once
nothing imports it.
"""

from __future__ import annotations

from chitram_core.db.upsert import insert_or_ignore

__all__ = ["insert_or_ignore"]
