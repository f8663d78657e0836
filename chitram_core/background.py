"""Background work that is not tied to the task that opened it.

A task group must be entered and exited in one task, so a ``Chitram`` that held one from
``__aenter__`` to ``__aexit__`` could not be opened in one task and closed in another (a
pytest-asyncio async fixture does exactly that). :class:`Background` runs its task group in a
task of its own, spawned outside the caller's task tree (``loop.create_task`` on asyncio,
``trio.lowlevel.spawn_system_task`` on trio); any task may then start jobs and close it.

Closing drains rather than cancels: jobs that have not started yet are dropped (their work must
be durable elsewhere, as thumbnail jobs are in the database), jobs that are running finish, and
only after ``grace`` seconds is what is left cancelled. Cancelling a job in the middle of a
database call is what used to hang ``anyio.run`` at exit: SQLAlchemy then invalidates the
connection and hands it to a graceful-close task that aiosqlite never completes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

log = logging.getLogger(__name__)


class Background:
    """A task group in its own task: start jobs from any task, close from any task.

    Create it inside a running event loop (its events belong to the loop's backend).
    """

    def __init__(self, name: str = "chitram-background") -> None:
        self.name = name
        self._task_group: TaskGroup | None = None
        self._ready = anyio.Event()
        self._closing = anyio.Event()
        self._done = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._pending = 0
        self._grace = 0.0
        self._closed = False
        self._handle: Any = None  # the asyncio task, kept so it is not garbage-collected

    @property
    def accepting(self) -> bool:
        return self._task_group is not None and not self._closing.is_set()

    @property
    def pending(self) -> int:
        """Jobs started and not yet finished (including those waiting for their first step)."""
        return self._pending

    async def start(self) -> None:
        """Spawn the supervising task and wait until it takes jobs."""
        if self._handle is not None or self._closed:
            raise RuntimeError(f"{self.name} was already started")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            import trio  # the only other backend anyio runs on

            trio.lowlevel.spawn_system_task(self._supervise, name=self.name)
            self._handle = True
        else:
            self._handle = loop.create_task(self._supervise(), name=self.name)
        await self._ready.wait()

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Run ``func(*args)`` in the background; False (nothing started) once closing."""
        task_group = self._task_group
        if task_group is None or self._closing.is_set():
            return False
        self._pending += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        task_group.start_soon(self._run, func, args)
        return True

    async def aclose(self, grace: float = 10.0) -> None:
        """Stop taking jobs, let running ones finish (cancel them after ``grace`` s), and wait
        until the supervising task has ended. Safe to call twice and from any task."""
        if self._handle is None or self._closed:
            self._closed = True
            return
        self._grace = grace
        self._closing.set()
        await self._done.wait()
        self._closed = True

    async def _run(self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            if not self._closing.is_set():
                await func(*args)
        except Exception:
            log.exception("background job %r failed", getattr(func, "__qualname__", func))
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def _supervise(self) -> None:
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                self._ready.set()
                await self._closing.wait()
                with anyio.move_on_after(self._grace):
                    await self._idle.wait()
                if self._pending:
                    log.warning(
                        "%s: %d job(s) still running after %.0f s; cancelling them",
                        self.name,
                        self._pending,
                        self._grace,
                    )
                task_group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            # The event loop is shutting down without ``aclose()``: nothing left to drain.
            raise
        except Exception:
            log.exception("%s stopped unexpectedly", self.name)
        finally:
            self._task_group = None
            self._ready.set()  # a start() waiting on a supervisor that failed at once
            self._done.set()


__all__ = ["Background"]
