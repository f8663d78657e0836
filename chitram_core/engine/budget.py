"""What a job waits for before it runs: bytes of the memory budget, and a worker slot."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

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

    def try_acquire(self, amount: int) -> bool:
        """Reserve ``amount`` now if it fits, ahead of any waiter (see :class:`FairGate`)."""
        if self.used + amount > self.total:
            return False
        self.used += amount
        return True

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

    def try_acquire(self) -> bool:
        """A slot now if one is free and no foreground caller waits for one."""
        if not self.free or self._waiters[0]:
            return False
        self.free -= 1
        return True

    def release(self) -> None:
        self.free += 1
        for queue in self._waiters:
            while self.free and queue:
                waiter = queue.popleft()
                self.free -= 1
                waiter.granted = True
                waiter.event.set()


@attrs.define(eq=False)
class _Turn:
    """One job waiting at a :class:`FairGate`."""

    owner: str | None
    seq: int  # arrival order
    event: anyio.Event = attrs.field(factory=anyio.Event)
    scope: anyio.CancelScope | None = None  # while it is the candidate: cancelled to step back


class FairGate:
    """Which waiting job goes next, chosen by owner: one user's queue never holds another's.

    Only one waiter at a time (the *candidate*) goes on to wait for room (memory and a worker
    slot); the others wait here in a queue per owner. When the candidate has its room (or gives
    up), the next one is the first job of the owner that goes first: the owner with the fewest
    jobs running, then the one admitted least recently (an owner with nothing in the engine
    counting as never admitted), then the one waiting longest. When a job arrives whose owner
    goes before the candidate's, the candidate steps back to the head of its owner's queue,
    giving up any room it was granted meanwhile, and the new job becomes the candidate. And
    while the candidate waits for memory, an arriving job that fits in the memory left and
    finds a worker idle runs at once (it takes nothing the candidate could use yet). So a
    user with nothing running waits only for the next room to free up, however many jobs
    other users have queued, and users with jobs running take turns. An owner's record is
    dropped once it has nothing waiting or running, so the state stays as small as the queue.
    """

    def __init__(self) -> None:
        self._queues: dict[str | None, deque[_Turn]] = {}
        self._candidate: _Turn | None = None
        self._active: dict[str | None, int] = {}  # jobs waiting or running
        self._running: dict[str | None, int] = {}
        self._last: dict[str | None, int] = {}  # turn of the owner's latest admission
        self._turn = 0
        self._arrivals = 0

    @property
    def waiting(self) -> int:
        """Jobs queued behind the candidate."""
        return sum(len(q) for q in self._queues.values())

    async def admit(
        self,
        owner: str | None,
        acquire: Callable[[], Awaitable[None]],
        now: Callable[[], bool] | None = None,
    ) -> None:
        """Wait for ``owner``'s turn, then ``acquire()`` the room as the candidate.

        ``now``, when given, is asked first while a candidate waits: True when it took room
        that was free at once (memory the candidate's job does not fit in yet, and an idle
        worker), and the job goes ahead without waiting.
        Returns once ``acquire`` has; each successful ``admit`` is matched by one :meth:`done`.
        ``acquire`` must leave nothing held when cancelled: the gate cancels it when the
        candidate steps back. A caller that is cancelled (or whose ``acquire`` fails) leaves
        nothing in the gate.
        """
        self._active[owner] = self._active.get(owner, 0) + 1
        self._arrivals += 1
        turn = _Turn(owner, self._arrivals)
        try:
            if self._candidate is None and not self._queues:
                self._make_candidate(turn)
            elif now is not None and now():
                self._admitted(owner)
                return
            else:
                self._queue(turn)
                self._challenge()
            while not await self._attempt(turn, acquire):
                pass
        except BaseException:
            self._forget(turn)
            self._leave(owner)
            raise

    def done(self, owner: str | None) -> None:
        """An admitted job of ``owner`` finished."""
        left = self._running.get(owner, 1) - 1
        if left > 0:
            self._running[owner] = left
        else:
            self._running.pop(owner, None)
        self._leave(owner)

    # the candidate ------------------------------------------------------------------------

    async def _attempt(self, turn: _Turn, acquire: Callable[[], Awaitable[None]]) -> bool:
        """Wait to be the candidate, then acquire: True once admitted, False when it stepped
        back (queued again at the head of its owner's queue)."""
        if self._candidate is not turn:
            await turn.event.wait()
        scope = turn.scope
        assert scope is not None and self._candidate is turn
        try:
            with scope:
                await acquire()
        finally:
            turn.scope = None
            self._candidate = None
        if scope.cancelled_caught:  # an owner that goes first came: step back
            turn.event = anyio.Event()
            self._queue(turn, front=True)
            self._next()
            return False
        self._admitted(turn.owner)
        self._next()
        return True

    def _admitted(self, owner: str | None) -> None:
        self._turn += 1
        self._last[owner] = self._turn
        self._running[owner] = self._running.get(owner, 0) + 1

    def _key(self, turn: _Turn) -> tuple[int, int, int]:
        owner = turn.owner
        return self._running.get(owner, 0), self._last.get(owner, 0), turn.seq

    def _best(self) -> _Turn | None:
        heads = [queue[0] for queue in self._queues.values()]
        return min(heads, key=self._key) if heads else None

    def _make_candidate(self, turn: _Turn) -> None:
        self._candidate = turn
        turn.scope = anyio.CancelScope()
        turn.event.set()

    def _next(self) -> None:
        """The best waiter becomes the candidate, unless there is one."""
        best = self._best()
        if self._candidate is not None or best is None:
            return
        queue = self._queues[best.owner]
        queue.popleft()
        if not queue:
            del self._queues[best.owner]
        self._make_candidate(best)

    def _challenge(self) -> None:
        """The candidate steps back when a waiter goes before it."""
        candidate, best = self._candidate, self._best()
        if candidate is None or best is None or candidate.scope is None:
            return
        if self._key(best) < self._key(candidate):
            candidate.scope.cancel()

    def _queue(self, turn: _Turn, *, front: bool = False) -> None:
        queue = self._queues.setdefault(turn.owner, deque())
        if front:
            queue.appendleft(turn)
        else:
            queue.append(turn)

    def _forget(self, turn: _Turn) -> None:
        """``turn`` leaves: out of its queue, or no longer the candidate."""
        if self._candidate is turn:
            self._candidate = None
            turn.scope = None
        else:
            queue = self._queues.get(turn.owner)
            if queue is not None and turn in queue:
                queue.remove(turn)
                if not queue:
                    del self._queues[turn.owner]
        self._next()

    def _leave(self, owner: str | None) -> None:
        left = self._active.get(owner, 1) - 1
        if left > 0:
            self._active[owner] = left
        else:
            self._active.pop(owner, None)
            self._last.pop(owner, None)
