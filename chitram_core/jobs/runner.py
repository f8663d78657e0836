"""One durable job runner for every kind of background work (tagging today; thumbnails and
variants can move onto it): the state lives in the ``jobs`` table, not in a process.

- ``enqueue(conn, kind, key)`` records the job in the caller's transaction, so it exists
  exactly when the thing it works on does (the upload's row, for tagging).
- A worker *claims* a due job with a conditional UPDATE (one winner across processes) and holds
  a lease; a crashed worker's job is claimed again once the lease runs out.
- The handler's outcome settles it: done (row deleted), :class:`RetryLater` (pending again,
  capped exponential back-off, never given up: "the tagger is down" is not the job's fault),
  :class:`JobFailed` (``failed``, with the reason), any other exception (retried with back-off,
  ``failed`` after ``max_attempts``).
- ``run_forever`` polls every ``poll_interval`` seconds and at once on :meth:`wake`;
  ``stop`` stops claiming, lets running jobs finish for ``grace`` seconds, then cancels them and
  hands their claims back, so a restart picks them up without waiting for the lease.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio
from anyio.abc import TaskGroup
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db import Database
from chitram_core.db import jobs as sql
from chitram_core.db.tables import utcnow
from chitram_core.logs import job_context

log = logging.getLogger(__name__)

Handler = Callable[[str], Awaitable[None]]
"""``async def handler(key)``: does the job for ``key``; idempotent (it may run twice)."""


class RetryLater(Exception):
    """The job could not be done now (a dependency is unavailable); try again later."""

    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class JobFailed(Exception):
    """The job can never succeed (e.g. the bytes cannot be decoded); stop trying."""


class JobRunner:
    def __init__(
        self,
        database: Database,
        *,
        poll_interval: float = 2.0,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        lease: float = 300.0,
        concurrency: int = 2,
        max_attempts: int = 8,
    ) -> None:
        self.db = database
        self.poll_interval = poll_interval
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.lease = lease
        self.max_attempts = max_attempts
        self._handlers: dict[str, Handler] = {}
        self._slots = anyio.Semaphore(concurrency)
        self._wake = anyio.Event()
        self._stopping = False
        self._running: set[tuple[str, str]] = set()
        self._task_group: TaskGroup | None = None

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)

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
            task_status.started()
            while not self._stopping:
                self._wake = anyio.Event()
                try:
                    await self._dispatch(tg)
                except Exception:
                    log.exception("the job runner could not look for due jobs; retrying")
                with anyio.move_on_after(self.poll_interval):
                    await self._wake.wait()
            tg.cancel_scope.cancel()

    async def _dispatch(self, tg: TaskGroup) -> None:
        if not self._handlers:
            return
        async with self.db.connect() as conn:
            due = await sql.due(conn, self.kinds, utcnow(), 100)
        for kind, key in due:
            if self._stopping:
                return
            if (kind, key) in self._running:
                continue
            await self._slots.acquire()
            if self._stopping:
                self._slots.release()
                return
            tg.start_soon(self._run_held, kind, key)

    async def _run_held(self, kind: str, key: str) -> None:
        try:
            await self.run_one(kind, key)
        finally:
            self._slots.release()

    async def run_due(self, limit: int = 100) -> int:
        """Run every due job now, one after another (the sweep and tests); how many finished."""
        async with self.db.connect() as conn:
            due = await sql.due(conn, self.kinds, utcnow(), limit)
        done = 0
        for kind, key in due:
            if self._stopping:
                break
            done += await self.run_one(kind, key)
        return done

    async def run_one(self, kind: str, key: str) -> bool:
        """Claim and run one job; True when it finished (its row is gone)."""
        handler = self._handlers.get(kind)
        if handler is None:
            return False
        now = utcnow()
        async with self.db.transaction() as conn:
            attempt = await sql.claim(conn, kind, key, now, now + timedelta(seconds=self.lease))
        if attempt is None:
            return False  # another worker has it, or it is not due
        self._running.add((kind, key))
        try:
            with job_context(kind, key):
                await handler(key)
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
        """Stop claiming; let running jobs finish for ``grace`` seconds, then cancel them."""
        self._stopping = True
        self._wake.set()
        with anyio.move_on_after(grace):
            while self._running:  # noqa: ASYNC110 - a set, not an event
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
