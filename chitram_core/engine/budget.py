"""What a job waits for before it runs: bytes of the memory budget, and a worker slot."""

from __future__ import annotations

from collections import deque

import anyio
import attrs


@attrs.define(eq=False)
class _Waiter:
    amount: int
    background: bool = False
    event: anyio.Event = attrs.field(factory=anyio.Event)
    granted: bool = False


class MemoryBudget:
    """``acquire(n)`` waits until ``n`` bytes fit under ``total``; ``release(n)`` returns them.

    Waiters are served in arrival order, so a large job is not starved by a stream of small
    ones, except that ``background`` waiters queue behind every foreground one (work a request
    waits for never waits for a background thumbnail's memory). A caller that is cancelled
    while waiting leaves nothing reserved.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, amount: int, *, background: bool = False) -> None:
        if amount > self.total:
            raise ValueError(f"{amount} bytes can never fit a budget of {self.total}")
        ahead = next((i for i, w in enumerate(self._waiters) if w.background), None)
        if background or ahead is None:
            ahead = len(self._waiters)
        if not ahead and self.used + amount <= self.total:
            self.used += amount
            return
        waiter = _Waiter(amount, background)
        self._waiters.insert(ahead, waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.release(amount)
            else:
                self._waiters.remove(waiter)
                self._grant()  # the head may have been the one blocking the others
            raise

    def release(self, amount: int) -> None:
        self.used -= amount
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.used + self._waiters[0].amount <= self.total:
            waiter = self._waiters.popleft()
            self.used += waiter.amount
            waiter.granted = True
            waiter.event.set()


class Slots:
    """``capacity`` slots; waiting foreground callers are served before background ones.

    Uploads wait on image work while they hold a connection open; background jobs
    (thumbnails after an upload) only fill the capacity the foreground leaves.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self._waiters: tuple[deque[_Waiter], deque[_Waiter]] = (deque(), deque())

    async def acquire(self, *, background: bool = False) -> None:
        queue = self._waiters[background]
        if self.free and not self._waiters[0] and not queue:
            self.free -= 1
            return
        waiter = _Waiter(1)
        queue.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.release()
            else:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        self.free += 1
        for queue in self._waiters:
            while self.free and queue:
                waiter = queue.popleft()
                self.free -= 1
                waiter.granted = True
                waiter.event.set()


class FairGate:
    """Which waiting job goes next, chosen by owner: one user's queue never holds another's.

    Only one waiter at a time (the *candidate*) goes on to wait for memory and a worker slot;
    the others wait here in a queue per owner. When the candidate has its room (or gives up),
    the next one is the first waiter of the owner admitted least recently, an owner with no
    work in the engine counting as never admitted. So a user with one upload waits for at most
    the job in front of it, however many jobs other users have queued, and users with many
    jobs take turns. An owner's record is dropped once it has nothing waiting or running, so
    the state stays as small as the queue.
    """

    def __init__(self) -> None:
        self._queues: dict[str | None, deque[_Waiter]] = {}
        self._candidate = False
        self._last: dict[str | None, int] = {}
        self._active: dict[str | None, int] = {}
        self._turn = 0

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def enter(self, owner: str | None) -> None:
        """Wait to be the candidate; each ``enter`` is matched by one :meth:`done`."""
        self._active[owner] = self._active.get(owner, 0) + 1
        if not self._candidate and not self._queues:
            self._candidate = True
            return
        waiter = _Waiter(1)
        self._queues.setdefault(owner, deque()).append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.passed(owner, admitted=False)
            else:
                queue = self._queues[owner]
                queue.remove(waiter)
                if not queue:
                    del self._queues[owner]
            raise

    def passed(self, owner: str | None, *, admitted: bool) -> None:
        """The candidate got its room (``admitted``) or gave up: the next one goes."""
        if admitted:
            self._turn += 1
            self._last[owner] = self._turn
        self._candidate = False
        if not self._queues:
            return
        nxt = min(self._queues, key=lambda o: self._last.get(o, 0))
        queue = self._queues[nxt]
        waiter = queue.popleft()
        if not queue:
            del self._queues[nxt]
        self._candidate = True
        waiter.granted = True
        waiter.event.set()

    def done(self, owner: str | None) -> None:
        """The owner's job finished (or never ran)."""
        left = self._active.get(owner, 1) - 1
        if left > 0:
            self._active[owner] = left
        else:
            self._active.pop(owner, None)
            self._last.pop(owner, None)
