"""Metadata persistence: SQLAlchemy 2 async over SQLite (embedded) or PostgreSQL (scale-out)."""

from chitram_core.db.database import Database
from chitram_core.db.tables import metadata

__all__ = ["Database", "metadata"]
