"""Content-addressed image storage behind a small protocol; fsspec does the real work."""

from __future__ import annotations

from typing import Any

from chitram_core import plugins
from chitram_core.storage.base import Storage, StorageError, StorageKeyNotFound

__all__ = ["Storage", "StorageError", "StorageKeyNotFound", "blob_key", "open_storage"]


def blob_key(sha256: str) -> str:
    """Where the bytes with this SHA-256 live: fanned out so no directory grows huge."""
    return f"blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def thumbnail_key(sha256: str, params_suffix: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}-{params_suffix}"


def open_storage(url: str, options: dict[str, Any] | None = None) -> Storage:
    """Storage for ``url``: a chitram plugin named after the scheme, else fsspec."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    names = plugins.available(plugins.STORAGE)
    name = scheme if scheme in names and scheme != "fsspec" else "fsspec"
    factory = plugins.load(plugins.STORAGE, name)
    storage: Storage = factory(url, **(options or {}))
    return storage
