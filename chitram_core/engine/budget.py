"""A memory budget in bytes, handed out first come, first served."""

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
