"""The in-process LRU: small stored objects (and ready thumbnails) without a storage read.

One implementation, :class:`Lru`, bounded by the total weight of what it holds; the read paths
use it twice: :class:`SmallObjects` (bytes of at most ``SMALL_OBJECT_BYTES``, weighed by size)
and the ready thumbnails by image id (weighed one each).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")

SMALL_OBJECT_BYTES = 64 * 1024
"""Objects of at most this size are kept (images and thumbnails alike)."""
SMALL_OBJECTS_BUDGET = 16 * 1024 * 1024
"""The default total size of what one process keeps."""


def _one(value: object) -> int:
    return 1


class Lru(Generic[V]):
    """Least recently used first out, once the total ``weight`` of the values passes
    ``budget``. A key already held keeps its value (:meth:`discard` it first to replace it)."""

    def __init__(self, budget: int, weight: Callable[[V], int] = _one) -> None:
        self.budget = budget
        self.size = 0
        self._weight = weight
        self._items: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        weight = self._weight(value)
        if weight > self.budget or key in self._items:
            return
        self._items[key] = value
        self.size += weight
        while self.size > self.budget:
            _, dropped = self._items.popitem(last=False)
            self.size -= self._weight(dropped)

    def discard(self, key: str) -> None:
        value = self._items.pop(key, None)
        if value is not None:
            self.size -= self._weight(value)


class SmallObjects(Lru[bytes]):
    """An LRU of small stored objects by SHA-256 (or thumbnail key), bounded by total size.

    Safe without invalidation because the key is the content hash: the bytes for a hash never
    change, and a deleted image is refused by its metadata lookup before its bytes are asked for.
    A thumbnail key names its source's hash and the rendering parameters, and is served only
    from a ready row of a live image, with its recorded size checked.
    """

    def __init__(self, budget: int) -> None:
        super().__init__(budget, len)
