"""What a job waits for before it runs: bytes of the memory budget, and a worker slot."""

from __future__ import annotations

from collections import deque

import anyio
import attrs


@attrs.define(eq=False)
class _Waiter:
    amount: int
    event: anyio.Event = attrs.field(factory=anyio.Event)
    granted: bool = False


class MemoryBudget:
    """``acquire(n)`` waits until ``n`` bytes fit under ``total``; ``release(n)`` returns them.

    Waiters are served in arrival order, so a large job is not starved by a stream of small
    ones. A caller that is cancelled while waiting leaves nothing reserved.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, amount: int) -> None:
        if amount > self.total:
            raise ValueError(f"{amount} bytes can never fit a budget of {self.total}")
        if not self._waiters and self.used + amount <= self.total:
            self.used += amount
            return
        waiter = _Waiter(amount)
        self._waiters.append(waiter)
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
