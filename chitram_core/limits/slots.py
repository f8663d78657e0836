"""Upload back-pressure: at most ``capacity`` uploads at once in this process.

An upload holds memory, a temporary object and a worker thread for probing; past a point more of
them only make every one slower. A request that cannot get a slot within ``wait_timeout`` gets
503 SERVICE_UNAVAILABLE with Retry-After, instead of queueing without bound; and when ``queue``
uploads already wait, the next one gets that 503 at once: a queue longer than the server can
drain in a client's patience only turns fast 503s into slow timeouts (wrk, a browser or a
proxy gives up after a few seconds and has then sent the whole body for nothing).

A slot is for the work, not for waiting on the network: the HTTP layer takes it with
:meth:`UploadSlots.take` only once the body has been received, so clients that stall mid-body
hold no slot. What they do hold is bounded by :meth:`UploadSlots.per_identity` (at most
``per_identity`` uploads of one user or anonymous client at once, else 429) and the idle and
total body timeouts.

Before reading a body the HTTP layer asks for room (:meth:`UploadSlots.wait_for_room`): while
every slot is busy and the queue is full, a new upload waits there, its body unread, for at most
``room_wait`` seconds (0.5) and is then refused with 503. Waiting there holds nothing but the
connection, and room is handed out one upload at a time, first come first served. Refusing
from the headers spares receiving and parsing a file that would be refused anyway; the short
wait keeps clients that retry at once (ignoring Retry-After) from turning an overloaded server
into one that only answers 503s, and lets a burst queue up instead of being refused.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from chitram_core import observe
from chitram_core.errors import RateLimitExceeded, ServiceUnavailable


class UploadSlots:
    def __init__(
        self,
        capacity: int,
        wait_timeout: float,
        *,
        per_identity: int | None = None,
        queue: int | None = None,
        room_wait: float = 0.5,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        if wait_timeout < 0:
            raise ValueError(f"wait_timeout must not be negative, got {wait_timeout}")
        if queue is not None and queue < 0:
            raise ValueError(f"queue must not be negative, got {queue}")
        self.capacity = capacity
        self.wait_timeout = wait_timeout
        self.queue = queue
        self.room_wait = room_wait
        self._room_waiters: deque[anyio.Event] = deque()
        self._semaphore = anyio.Semaphore(capacity)
        self.waiting = 0
        self.per_identity_limit = per_identity
        self._active: dict[str, int] = {}

    @property
    def in_use(self) -> int:
        return self.capacity - self._semaphore.value

    @property
    def available(self) -> int:
        return self._semaphore.value

    def snapshot(self) -> dict[str, int]:
        """The health report's ``upload_concurrency``."""
        return {"limit": self.capacity, "in_use": self.in_use, "waiting": self.waiting}

    def _report(self) -> None:
        observe.observer.upload_slots(self.in_use, self.waiting, self.capacity)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        """Hold one slot for the block; :class:`ServiceUnavailable` after the wait timeout."""
        await self.take()
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        """Give back a slot got from :meth:`take`."""
        self._semaphore.release()
        self._report()
        self._room_freed()

    @asynccontextmanager
    async def per_identity(self, identity: str) -> AsyncIterator[None]:
        """Count one upload of ``identity`` for the block; 429 when it already has
        ``per_identity`` in progress in this process."""
        limit = self.per_identity_limit
        if limit is None:
            yield
            return
        count = self._active.get(identity, 0)
        if count >= limit:
            raise RateLimitExceeded(
                f"At most {limit} uploads at once per user or client; wait for one to finish",
                limit=limit,
                retry_after=1,
            )
        self._active[identity] = count + 1
        try:
            yield
        finally:
            remaining = self._active[identity] - 1
            if remaining:
                self._active[identity] = remaining
            else:
                del self._active[identity]

    def has_room(self) -> bool:
        """Whether an upload arriving now could take a slot or queue for one."""
        return self._semaphore.value > 0 or self.queue is None or self.waiting < self.queue

    def check_room(self) -> None:
        """:class:`ServiceUnavailable` now, without waiting, unless :meth:`has_room`."""
        if not self.has_room():
            raise self._queue_full()

    async def wait_for_room(self) -> None:
        """Return once there is room (:meth:`has_room`), at once or when handed the next room to
        free up, in arrival order; :class:`ServiceUnavailable` (``Retry-After: 1``) after
        ``room_wait`` seconds without. Takes nothing: :meth:`take` still decides."""
        if self.has_room() and not self._room_waiters:
            return
        handed = anyio.Event()
        self._room_waiters.append(handed)
        try:
            with anyio.move_on_after(self.room_wait):
                await handed.wait()
        finally:
            if not handed.is_set():
                self._room_waiters.remove(handed)
        if not handed.is_set():
            raise self._queue_full()

    def _room_freed(self) -> None:
        """Hand the room that just freed up to the longest waiting upload, if any."""
        if self._room_waiters and self.has_room():
            self._room_waiters.popleft().set()

    def _queue_full(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"Too many uploads in progress ({self.capacity}) and waiting "
            f"({self.waiting}); try again shortly",
            retry_after=1,
            capacity=self.capacity,
        )

    async def take(self) -> None:
        """Take one slot (give it back with :meth:`release`); :class:`ServiceUnavailable`
        after the wait timeout, or at once when ``queue`` uploads already wait."""
        try:
            self._semaphore.acquire_nowait()
        except anyio.WouldBlock:
            if not self.has_room():
                raise self._queue_full() from None
            self.waiting += 1
            self._report()
            try:
                with anyio.move_on_after(self.wait_timeout) as scope:
                    await self._semaphore.acquire()
            finally:
                self.waiting -= 1
                self._report()
                self._room_freed()
            if scope.cancelled_caught:
                raise ServiceUnavailable(
                    f"Too many uploads in progress ({self.capacity}); try again shortly",
                    retry_after=max(1, math.ceil(self.wait_timeout)),
                    capacity=self.capacity,
                ) from None
        self._report()
