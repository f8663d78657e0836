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

Slots are shared fairly by identity (the user, or the anonymous client's address). The last
``reserve`` free slots are kept for identities holding none: an identity that already holds a
slot waits rather than take one of them, so uploads of a few users (or of one user's several
accounts) never hold every slot and a user arriving with nothing in progress finds one free.
When a slot frees up, it goes to the waiting upload whose identity holds the fewest slots, the
one waiting longest among those.

Before reading a body the HTTP layer asks for room (:meth:`UploadSlots.room`): a free slot or a
place in the queue, not already promised to another upload. Without room a new upload waits, its
body unread, for at most ``room_wait`` seconds (0.5) to be handed the next room that frees up,
first come first served, and is then refused with 503. A room handed out is kept for its upload
until it takes its slot (:meth:`UploadSlots.take`) or ends, for at most ``room_hold`` seconds
(2): so rooms are handed out one at a time, never to a crowd that would then find the queue full
after sending its files, and a client that stalls after being let in holds its room only
briefly. An upload let in at once, with room to spare and nobody waiting, holds nothing.
Refusing from the headers spares receiving and parsing a file that would be refused anyway; the
short wait keeps clients that retry at once (ignoring Retry-After) from turning an overloaded
server into one that only answers 503s, and lets a burst queue up instead.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import attrs

from chitram_core.errors import RateLimitExceeded, ServiceUnavailable
from chitram_core.observe import Observer


class Room:
    """Room for one upload, handed out by :meth:`UploadSlots.room`."""

    __slots__ = ("expires", "handed")

    def __init__(self) -> None:
        self.handed = anyio.Event()
        self.expires = math.inf


@attrs.define(eq=False)
class _Taker:
    """An upload waiting for a slot."""

    identity: str | None
    event: anyio.Event = attrs.field(factory=anyio.Event)
    granted: bool = False


class UploadSlots:
    def __init__(
        self,
        capacity: int,
        wait_timeout: float,
        *,
        per_identity: int | None = None,
        queue: int | None = None,
        reserve: int = 0,
        room_wait: float = 0.5,
        room_hold: float = 2.0,
        observer: Observer | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        if wait_timeout < 0:
            raise ValueError(f"wait_timeout must not be negative, got {wait_timeout}")
        if queue is not None and queue < 0:
            raise ValueError(f"queue must not be negative, got {queue}")
        if reserve < 0:
            raise ValueError(f"reserve must not be negative, got {reserve}")
        self.capacity = capacity
        self.observer = observer if observer is not None else Observer()
        self.wait_timeout = wait_timeout
        self.queue = queue
        self.room_wait = room_wait
        self.room_hold = room_hold
        self._room_waiters: deque[Room] = deque()
        self._promised: set[Room] = set()
        self.reserve = reserve
        self._free = capacity
        self._held: dict[str | None, int] = {}  # slots held, by identity
        self._takers: list[_Taker] = []  # waiting for a slot, in arrival order
        self.waiting = 0
        self.per_identity_limit = per_identity
        self._active: dict[str, int] = {}

    @property
    def in_use(self) -> int:
        return self.capacity - self._free

    @property
    def available(self) -> int:
        return self._free

    def snapshot(self) -> dict[str, int]:
        """The health report's ``upload_concurrency``: ``waiting`` for a slot (in the queue),
        ``waiting_for_room`` to get into the queue (body unread, see :meth:`room`)."""
        return {
            "limit": self.capacity,
            "in_use": self.in_use,
            "waiting": self.waiting,
            "waiting_for_room": len(self._room_waiters),
        }

    def _report(self) -> None:
        self.observer.upload_slots(self.in_use, self.waiting, self.capacity)

    @asynccontextmanager
    async def acquire(self, identity: str | None = None) -> AsyncIterator[None]:
        """Hold one slot for the block; :class:`ServiceUnavailable` after the wait timeout."""
        await self.take(identity=identity)
        try:
            yield
        finally:
            self.release(identity)

    def release(self, identity: str | None = None) -> None:
        """Give back a slot got from :meth:`take` (with the same ``identity``)."""
        self._free += 1
        held = self._held.get(identity, 1) - 1
        if held > 0:
            self._held[identity] = held
        else:
            self._held.pop(identity, None)
        self._grant()
        self._report()
        self._hand_out()

    def _may_take(self, identity: str | None) -> bool:
        """A slot is free for ``identity``: one of the reserved ones only if it holds none."""
        return self._free > (self.reserve if self._held.get(identity) else 0)

    def _hold(self, identity: str | None) -> None:
        self._free -= 1
        self._held[identity] = self._held.get(identity, 0) + 1

    def _grant(self) -> None:
        """Free slots to waiting uploads: the identity holding fewest first, then arrival."""
        while self._free and self._takers:
            eligible = [t for t in self._takers if self._may_take(t.identity)]
            if not eligible:
                return
            taker = min(eligible, key=lambda t: self._held.get(t.identity, 0))
            self._takers.remove(taker)
            self._hold(taker.identity)
            taker.granted = True
            taker.event.set()

    @asynccontextmanager
    async def on_arrival(
        self, room: Room | None, identity: str
    ) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """An upload's turn among ``identity``'s (:meth:`per_identity`) and the call to make
        once its body has arrived, which takes the upload slot (:meth:`take`): the slot is held
        for the work on the file, never while the client sends, and released on exit."""
        held = False

        async def arrived() -> None:
            nonlocal held
            await self.take(room, identity=identity)
            held = True

        async with self.per_identity(identity):
            try:
                yield arrived
            finally:
                if held:
                    self.release(identity)

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
        return self._free > 0 or self.queue is None or self.waiting < self.queue

    def check_room(self) -> None:
        """:class:`ServiceUnavailable` now, without waiting, unless :meth:`has_room`."""
        if not self.has_room():
            raise self._queue_full()

    @asynccontextmanager
    async def room(self) -> AsyncIterator[Room]:
        """Room for one upload, for the block: at once when there is room and nobody waits for
        it, else when handed the next room to free up, in arrival order;
        :class:`ServiceUnavailable` (``Retry-After: 1``) after ``room_wait`` seconds without.
        A room handed out is kept for this upload until it passes it to :meth:`take`, the
        block ends, or ``room_hold`` seconds have passed."""
        room = Room()
        if not self._room_waiters and self._room_left() > 0:
            # Room to spare: in at once, unpromised (a client stalling now holds nothing).
            yield room
            return
        self._room_waiters.append(room)
        try:
            self._hand_out()  # room that lapsed since the last hand-out, to those first in line
            with anyio.move_on_after(self.room_wait):
                await room.handed.wait()
            if not room.handed.is_set():
                raise self._queue_full()
            yield room
        finally:
            if room.handed.is_set():
                self._promised.discard(room)
            else:
                self._room_waiters.remove(room)
            self._hand_out()

    def _room_left(self) -> float:
        """Free slots and queue places not promised to an upload on its way to :meth:`take`."""
        if self.queue is None:
            return math.inf
        now = anyio.current_time()
        for room in [room for room in self._promised if room.expires <= now]:
            self._promised.discard(room)
        return self._free + self.queue - self.waiting - len(self._promised)

    def _hand_out(self) -> None:
        """Hand the room there is to the longest waiting uploads."""
        while self._room_waiters and self._room_left() > 0:
            room = self._room_waiters.popleft()
            room.expires = anyio.current_time() + self.room_hold
            self._promised.add(room)
            room.handed.set()

    def _queue_full(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"Too many uploads in progress ({self.capacity}) and waiting "
            f"({self.waiting}); try again shortly",
            retry_after=1,
            capacity=self.capacity,
        )

    async def take(self, room: Room | None = None, *, identity: str | None = None) -> None:
        """Take one slot for ``identity`` (give it back with :meth:`release`);
        :class:`ServiceUnavailable` after the wait timeout, or at once when ``queue`` uploads
        already wait. ``room``, from :meth:`room`, is used up: its place is now this upload's
        slot or place in the queue. Uploads without an identity share one."""
        if room is not None:
            self._promised.discard(room)
        if self._may_take(identity):
            self._hold(identity)
            self._report()
            return
        if self.queue is not None and self.waiting >= self.queue:
            raise self._queue_full()
        taker = _Taker(identity)
        self._takers.append(taker)
        self.waiting += 1
        self._report()
        try:
            with anyio.move_on_after(self.wait_timeout):
                await taker.event.wait()
        except BaseException:
            if taker.granted:
                self.release(identity)
            else:
                self._takers.remove(taker)
            raise
        finally:
            self.waiting -= 1
            self._report()
            self._hand_out()
        if not taker.granted:
            self._takers.remove(taker)
            raise ServiceUnavailable(
                f"Too many uploads in progress ({self.capacity}); try again shortly",
                retry_after=max(1, math.ceil(self.wait_timeout)),
                capacity=self.capacity,
            )
