"""One durable job runner for every kind of background work (tagging, thumbnails): the state
lives in the ``jobs`` table, not in a process.

- ``enqueue(conn, kind, key)`` records the job in the caller's transaction, so it exists
  exactly when the thing it works on does (the upload's row, for tagging).
- A worker *claims* a due job with a conditional UPDATE (one winner across processes) and holds
  a lease, renewed while the job runs (so a lease can be short however long the job); a killed
  worker's job is claimed again once its lease runs out.
- Each kind may have its own lease and its own number of jobs at once (``register``); a kind
  without one shares the runner's ``concurrency``. A kind whose slots are full does not hold up
  the others.
- A kind may be claimed *ahead* of its free slots (``register(ahead=n)``): up to ``n`` more of
  its jobs are claimed, leased and held in this process, and one starts the moment a slot is
  free, without a round trip to the database. Claims come in batches, once half of what the
  kind may hold is free, so a busy queue costs one claim per several jobs.
- The handler's outcome settles it: done (row deleted), :class:`RetryLater` (pending again,
  capped exponential back-off, never given up: "the tagger is down" is not the job's fault),
  :class:`JobFailed` (``failed``, with the reason), any other exception (retried with back-off,
  ``failed`` after ``max_attempts``).
- ``run_forever`` polls every ``poll_interval`` seconds and at once on :meth:`wake`;
  ``stop`` stops claiming, hands the held (claimed, not started) jobs back at once, lets running
  jobs finish for ``grace`` seconds, then cancels them and hands their claims back too, so
  another worker or a restart picks them up without waiting for the lease.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import anyio
from anyio.abc import TaskGroup
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db import Database
from chitram_core.db import jobs as sql
from chitram_core.db.tables import utcnow
from chitram_core.logs import job_context

log = logging.getLogger(__name__)

Handler = Callable[[str], Awaitable[bool | None]]
"""``async def handler(key)``: does the job for ``key``; idempotent (it may run twice). It may
return True when it deleted the job's row itself, in the transaction that recorded its result
(the runner then skips its own)."""


class RetryLater(Exception):
    """The job could not be done now (a dependency is unavailable); try again later."""

    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class JobFailed(Exception):
    """The job can never succeed (e.g. the bytes cannot be decoded); stop trying."""


@dataclass(frozen=True)
class _Kind:
    handler: Handler
    lease: float
    slots: anyio.Semaphore
    capacity: int  # of ``slots``
    swept: bool
    ahead: int
    held: deque[tuple[str, int]]  # claimed, not started: (key, attempt)


class JobRunner:
    def __init__(
        self,
        database: Database,
        *,
        poll_interval: float = 2.0,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        lease: float = 60.0,
        concurrency: int = 2,
        max_attempts: int = 8,
    ) -> None:
        self.db = database
        self.poll_interval = poll_interval
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.lease = lease
        self.max_attempts = max_attempts
        self._kinds: dict[str, _Kind] = {}
        self._concurrency = concurrency
        self._slots = anyio.Semaphore(concurrency)
        self._wake = anyio.Event()
        self._stopping = False
        self._running: set[tuple[str, str]] = set()
        self._backlog: set[str] = set()  # kinds whose last claim found due jobs
        self._busy = 0  # a look for due jobs, or a started job, in progress
        self._task_group: TaskGroup | None = None

    def register(
        self,
        kind: str,
        handler: Handler,
        *,
        lease: float | None = None,
        concurrency: int | None = None,
        swept: bool = True,
        ahead: int = 0,
    ) -> None:
        """Run ``kind``'s jobs with ``handler``; ``lease`` seconds (default the runner's) before
        a silent worker's job is taken over, ``concurrency`` of them at once (default: shared).
        ``swept=False``: :meth:`run_due` leaves the kind out, its owner having a pass of its own
        (thumbnails: counted and reported apart by the sweep). ``ahead``: how many of its jobs
        this process may hold claimed beyond its free slots (their leases renewed like the
        running jobs'; handed back on :meth:`stop`)."""
        if ahead < 0:
            raise ValueError("ahead must be 0 or more")
        if concurrency is None:
            slots, capacity = self._slots, self._concurrency
        else:
            slots, capacity = anyio.Semaphore(concurrency), concurrency
        lease = self.lease if lease is None else lease
        self._kinds[kind] = _Kind(handler, lease, slots, capacity, swept, ahead, deque())

    @property
    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    async def enqueue(
        self, conn: AsyncConnection, kind: str, key: str, *, delay: float = 0.0
    ) -> None:
        """Record a job in the caller's transaction; call :meth:`wake` after it commits."""
        await sql.enqueue(conn, kind, key, utcnow() + timedelta(seconds=delay))

    def wake(self) -> None:
        """Look for due jobs now rather than at the next poll."""
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: doubling from ``base_backoff``, capped."""
        return float(min(self.base_backoff * 2 ** max(attempts - 1, 0), self.max_backoff))

    # running ------------------------------------------------------------------------------

    async def run_forever(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Claim and run due jobs until :meth:`stop`."""
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            tg.start_soon(self._renew_leases)
            task_status.started()
            while not self._stopping:
                self._wake = anyio.Event()
                self._busy += 1
                try:
                    await self._dispatch(tg)
                except Exception:
                    log.exception("the job runner could not look for due jobs; retrying")
                finally:
                    self._busy -= 1
                with anyio.move_on_after(self.poll_interval):
                    await self._wake.wait()
            # Stopping: running jobs finish (``stop`` cancels them after its grace).
            while self._busy:  # noqa: ASYNC110 - a counter, not an event
                await anyio.sleep(0.02)
            await self._hand_back()  # claimed while stopping (stop() handed back the rest)
            tg.cancel_scope.cancel()

    async def _dispatch(self, tg: TaskGroup) -> None:
        """Start held jobs in the free slots, then claim what each kind may take: its free
        slots plus what it may hold ahead (claimed per kind in one transaction, so a backlog of
        one kind never hides another's due jobs, and several processes claiming at once take
        disjoint jobs)."""
        for kind, spec in self._kinds.items():
            if self._stopping:
                return
            self._start_held(tg, kind, spec)
            room = spec.slots.value + spec.ahead - len(spec.held)
            if room <= 0:
                continue  # a finishing job wakes the loop
            if spec.held and room < max((spec.capacity + spec.ahead) // 2, 1):
                continue  # enough in hand: claim in batches, not a round trip per job
            now = utcnow()
            # A read first: most looks find nothing, and they need not take the write lock.
            # Not while the kind has a backlog (its last claim found jobs): then it is a round
            # trip per job for nothing.
            if kind not in self._backlog:
                async with self.db.connect() as conn:
                    if not await sql.due(conn, [kind], now, 1):
                        continue
            async with self.db.one_statement() as conn:
                claimed = await sql.claim_due(
                    conn, kind, now, now + timedelta(seconds=spec.lease), room
                )
            if claimed:
                self._backlog.add(kind)
            else:
                self._backlog.discard(kind)
            spec.held.extend(claimed)
            if self._stopping:
                await self._hand_back()  # stop() came during the claim
                return
            self._start_held(tg, kind, spec)

    def _start_held(self, tg: TaskGroup, kind: str, spec: _Kind) -> None:
        """Start held jobs of ``kind`` while it has free slots (no await: the slots counted
        free are still free when taken)."""
        while spec.held and spec.slots.value > 0 and not self._stopping:
            key, attempt = spec.held.popleft()
            spec.slots.acquire_nowait()
            self._running.add((kind, key))
            self._busy += 1
            tg.start_soon(self._run_held, spec, kind, key, attempt)

    async def _hand_back(self) -> None:
        """Give the held jobs back to the queue (pending, due as before, the claim's attempt
        not counted), so another worker takes them now rather than when their lease ends."""
        for kind, spec in self._kinds.items():
            keys = [key for key, _ in spec.held]
            spec.held.clear()
            if not keys:
                continue
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                try:
                    async with self.db.transaction() as conn:
                        await sql.release(conn, kind, keys, utcnow())
                except Exception:
                    log.exception(
                        "could not hand back %d claimed %s job(s); they are taken over when "
                        "their lease ends",
                        len(keys),
                        kind,
                    )
                    continue
            log.info("handed %d claimed %s job(s) back to the queue", len(keys), kind)

    async def _run_held(self, spec: _Kind, kind: str, key: str, attempt: int) -> None:
        try:
            await self._execute(spec, kind, key, attempt)
        finally:
            self._busy -= 1
            spec.slots.release()
            if self._task_group is not None:
                self._start_held(self._task_group, kind, spec)  # the next one, no round trip
            self.wake()  # a slot is free, or the held jobs run low: look for due jobs now

    async def _renew_leases(self) -> None:
        """Extend the leases of the jobs this process runs, every third of the shortest lease:
        a lease then only runs out when its worker is gone."""
        while True:  # until run_forever ends, after the last job
            leases = [spec.lease for spec in self._kinds.values()] or [self.lease]
            await anyio.sleep(max(min(leases) / 3, 0.05))
            running: dict[str, list[str]] = {}
            for kind, key in list(self._running):
                running.setdefault(kind, []).append(key)
            for kind, spec in self._kinds.items():
                running.setdefault(kind, []).extend(key for key, _ in spec.held)
            running = {kind: keys for kind, keys in running.items() if keys}
            if not running:
                continue
            # Shielded: a query cancelled mid-flight at shutdown can leave a driver task behind.
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                try:
                    async with self.db.transaction() as conn:
                        for kind, keys in running.items():
                            until = utcnow() + timedelta(seconds=self._kinds[kind].lease)
                            await sql.renew(conn, kind, keys, until)
                except Exception:
                    log.exception("could not renew the leases of running jobs; retrying")

    async def due(self, kind: str, limit: int = 100) -> list[str]:
        """The keys of ``kind``'s jobs that may be claimed now, oldest due first."""
        async with self.db.connect() as conn:
            return [key for _, key in await sql.due(conn, [kind], utcnow(), limit)]

    async def run_due(self, limit: int = 100) -> int:
        """Run every due job of the swept kinds now, one after another (the sweep and tests);
        how many finished."""
        kinds = [kind for kind, spec in self._kinds.items() if spec.swept]
        if not kinds:
            return 0
        async with self.db.connect() as conn:
            due = await sql.due(conn, kinds, utcnow(), limit)
        done = 0
        for kind, key in due:
            if self._stopping:
                break
            done += await self.run_one(kind, key)
        return done

    async def run_one(self, kind: str, key: str) -> bool:
        """Claim and run one job; True when it finished (its row is gone)."""
        spec = self._kinds.get(kind)
        if spec is None or self._stopping:
            return False
        now = utcnow()
        async with self.db.transaction() as conn:
            attempt = await sql.claim(conn, kind, key, now, now + timedelta(seconds=spec.lease))
        if attempt is None:
            return False  # another worker has it, or it is not due
        self._running.add((kind, key))
        return await self._execute(spec, kind, key, attempt)

    async def _execute(self, spec: _Kind, kind: str, key: str, attempt: int) -> bool:
        """Run a job this process claimed (it is in ``_running``) and settle it; True when it
        finished."""
        try:
            with job_context(kind, key):
                finished = await spec.handler(key)
        except RetryLater as exc:
            delay = exc.delay if exc.delay is not None else self.backoff(attempt)
            log.info("job %s/%s: %s; retrying in %.1f s", kind, key, exc.reason, delay)
            await self._settle(kind, key, "pending", delay, exc.reason)
            return False
        except JobFailed as exc:
            log.warning("job %s/%s failed for good: %s", kind, key, exc)
            await self._settle(kind, key, "failed", 0.0, str(exc))
            return False
        except anyio.get_cancelled_exc_class():
            # Stopped mid-job: hand the claim back so the next process need not wait the lease.
            with anyio.CancelScope(shield=True):
                await self._settle(kind, key, "pending", 0.0, "interrupted", attempts_delta=-1)
            raise
        except Exception as exc:
            give_up = attempt >= self.max_attempts
            log.exception("job %s/%s crashed (attempt %d)", kind, key, attempt)
            await self._settle(
                kind,
                key,
                "failed" if give_up else "pending",
                self.backoff(attempt),
                f"{type(exc).__name__}: {exc}",
            )
            return False
        finally:
            self._running.discard((kind, key))
        if not finished:
            async with self.db.transaction() as conn:
                await sql.finish(conn, kind, key)
        return True

    async def _settle(
        self, kind: str, key: str, state: str, delay: float, error: str, attempts_delta: int = 0
    ) -> None:
        async with self.db.transaction() as conn:
            await sql.settle(
                conn,
                kind,
                key,
                state=state,
                next_attempt_at=utcnow() + timedelta(seconds=delay),
                error=error[:1000],
                attempts_delta=attempts_delta,
            )

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming and hand the held jobs back; let running jobs finish for ``grace``
        seconds, then cancel them (their claims are handed back too)."""
        self._stopping = True
        self._wake.set()
        await self._hand_back()
        with anyio.move_on_after(grace):
            while self._running or self._busy:  # noqa: ASYNC110 - not events
                await anyio.sleep(0.02)
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    async def counts(self) -> dict[tuple[str, str], int]:
        async with self.db.connect() as conn:
            return await sql.counts(conn)

    async def job(self, kind: str, key: str) -> dict[str, object] | None:
        """The job's row (None once it is done): state, attempts, next_attempt_at, error."""
        async with self.db.connect() as conn:
            return await sql.get(conn, kind, key)
