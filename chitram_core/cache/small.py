"""Small stored objects kept in process memory: the hot read path without a storage read."""

from __future__ import annotations

from collections import OrderedDict

SMALL_OBJECT_BYTES = 64 * 1024
"""Objects of at most this size are kept (images and thumbnails alike)."""
SMALL_OBJECTS_BUDGET = 16 * 1024 * 1024
"""The default total size of what one process keeps."""


class SmallObjects:
    """An LRU of small stored objects by SHA-256 (or thumbnail key), bounded by total size.

    Safe without invalidation because the key is the content hash: the bytes for a hash never
    change, and a deleted image is refused by its metadata lookup before its bytes are asked for.
    A thumbnail key names its source's hash and the rendering parameters, and is served only
    from a ready row of a live image, with its recorded size checked.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def get(self, sha256: str) -> bytes | None:
        data = self._items.get(sha256)
        if data is not None:
            self._items.move_to_end(sha256)
        return data

    def put(self, sha256: str, data: bytes) -> None:
        if len(data) > self.budget or sha256 in self._items:
            return
        self._items[sha256] = data
        self.size += len(data)
        while self.size > self.budget:
            _, dropped = self._items.popitem(last=False)
            self.size -= len(dropped)

    def discard(self, sha256: str) -> None:
        data = self._items.pop(sha256, None)
        if data is not None:
            self.size -= len(data)
