"""``ImageEngine``: where every decode of user bytes runs.

A bounded set of worker processes, started lazily, each with its own
address-space cap. A job first reserves its worst-case memory from a shared budget and a
worker slot (waiting at most ``wait_timeout``, else 503 with ``Retry-After``), then is sent to an
idle worker over a socket pair; the event loop waits for the answer on the socket (no thread),
so a job past its ``timeout`` is stopped by SIGKILL and its worker replaced. Any module-level
function of picklable arguments can be a job: verification and thumbnails today, variants,
taggers and placeholders later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from chitram_core.engine.budget import FairGate, MemoryBudget, Slots
from chitram_core.errors import (
    ChitramError,
    DecodeTimeout,
    ImageTooLarge,
    ImageWorkerCrashed,
    InvalidImage,
    ServiceUnavailable,
)

if TYPE_CHECKING:
    from chitram_core.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

MiB = 1024 * 1024
WORKER_HEADROOM = 256 * MiB
"""Address space a worker may map on top of the largest job: allocator arenas, code, slack."""
RETIRE_ABOVE = 64 * MiB
"""After a job reserving more than this, a worker hands its memory back to the OS (gc, Pillow's
block cache, ``malloc_trim``); a worker whose resident size then stays more than this above its
size at start is retired, so its memory goes back. Where the worker cannot measure its resident
size, a worker that ran such a job is retired."""
MAX_JOBS_PER_WORKER = 1000

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_WORKER_CODE = "from chitram_core.engine.worker import serve; serve()"


class _Worker:
    __slots__ = ("conn", "jobs", "process")

    def __init__(self, process: subprocess.Popen[bytes], conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.jobs = 0

    def kill(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.process.kill()
        self.conn.close()

    def retire(self) -> None:
        self.conn.close()  # the worker reads EOF and exits


class ImageEngine:
    """Bounded, killable image work in worker processes.

    Counters for monitoring are plain attributes (see :meth:`snapshot`).
    """

    def __init__(
        self,
        *,
        workers: int,
        memory_budget: int,
        decode_timeout: float,
        wait_timeout: float,
        worker_memory: int | None = None,
        max_jobs_per_worker: int = MAX_JOBS_PER_WORKER,
        retire_above: int = RETIRE_ABOVE,
    ) -> None:
        if workers < 1:
            raise ValueError("an image engine needs at least one worker")
        self.max_workers = workers
        self.budget = MemoryBudget(memory_budget)
        self.decode_timeout = decode_timeout
        self.wait_timeout = wait_timeout
        # None: no cap (only where RLIMIT_AS is unsupported or for debugging).
        self.worker_memory = (
            worker_memory if worker_memory is not None else memory_budget + WORKER_HEADROOM
        )
        self.max_jobs_per_worker = max_jobs_per_worker
        self.retire_above = retire_above
        self._slots = Slots(workers)
        self._gates = (FairGate(), FairGate())  # foreground, background
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._gone: list[subprocess.Popen[bytes]] = []
        self._closed = False
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._finalizer = weakref.finalize(self, _kill_all, self._processes)
        # Counters (read by monitoring; never reset).
        self.jobs_started = 0
        self.jobs_ok = 0
        self.jobs_failed = 0
        self.timeouts = 0
        self.crashes = 0
        self.memory_kills = 0
        self.rejected = 0
        self.workers_started = 0
        self.retired = 0
        self.waiting = 0
        self.seconds_by_op: dict[str, float] = {}
        self.jobs_by_op: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageEngine:
        return cls(
            workers=settings.image_workers or os.cpu_count() or 1,
            memory_budget=settings.image_memory_budget,
            decode_timeout=settings.decode_timeout,
            wait_timeout=settings.image_wait_timeout,
        )

    # monitoring ---------------------------------------------------------------------------

    @property
    def running(self) -> int:
        return len(self._busy)

    @property
    def workers(self) -> int:
        """Worker processes alive now (idle or busy)."""
        return len(self._idle) + len(self._busy)

    @property
    def memory_reserved(self) -> int:
        return self.budget.used

    def busy_pids(self) -> list[int]:
        """Process ids of the workers running a job now (to inspect or signal them)."""
        return [worker.process.pid for worker in self._busy]

    def snapshot(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "max_workers": self.max_workers,
            "running": self.running,
            "waiting": self.waiting,
            "memory_reserved": self.memory_reserved,
            "memory_budget": self.budget.total,
            "jobs_started": self.jobs_started,
            "jobs_ok": self.jobs_ok,
            "jobs_failed": self.jobs_failed,
            "timeouts": self.timeouts,
            "crashes": self.crashes,
            "memory_kills": self.memory_kills,
            "rejected": self.rejected,
            "workers_started": self.workers_started,
            "workers_retired": self.retired,
        }

    # running jobs -------------------------------------------------------------------------

    async def run(
        self,
        function: Callable[..., T],
        *args: Any,
        memory: int,
        timeout: float | None = None,  # noqa: ASYNC109 - enforced by killing the worker
        op: str = "job",
        background: bool = False,
        owner: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``function(*args, **kwargs)`` in a worker, reserving ``memory`` bytes first.

        Raises what the job raises (a ``ChitramError``), :class:`DecodeTimeout` after
        ``timeout`` (default: the engine's decode timeout), :class:`ImageWorkerCrashed` when
        the worker died, :class:`ImageTooLarge` when ``memory`` exceeds the whole budget and
        :class:`ServiceUnavailable` when no room was free within the wait timeout.
        ``background`` jobs get a worker only when no foreground job is waiting for one.
        Waiting jobs are admitted fairly by ``owner`` (see
        :class:`~chitram_core.engine.budget.FairGate`); jobs without one share one queue.
        """
        if self._closed:
            raise ServiceUnavailable("Image work is shutting down", retry_after=5)
        if memory > self.budget.total:
            raise ImageTooLarge(
                f"Decoding this image needs about {memory // MiB} MiB, more than the "
                f"{self.budget.total // MiB} MiB image-work budget",
                memory=memory,
                budget=self.budget.total,
            )
        gate = self._gates[background]
        await self._admit(memory, background, gate, owner)
        started = time.perf_counter()
        self.jobs_started += 1
        try:
            return await self._dispatch(
                function, args, kwargs, memory, self.decode_timeout if timeout is None else timeout
            )
        except BaseException:
            self.jobs_failed += 1
            raise
        finally:
            self._slots.release()
            self.budget.release(memory)
            gate.done(owner)
            elapsed = time.perf_counter() - started
            self.seconds_by_op[op] = self.seconds_by_op.get(op, 0.0) + elapsed
            self.jobs_by_op[op] = self.jobs_by_op.get(op, 0) + 1

    async def _admit(
        self, memory: int, background: bool, gate: FairGate, owner: str | None
    ) -> None:
        async def room() -> None:
            await self.budget.acquire(memory, background=background)
            try:
                await self._slots.acquire(background=background)
            except BaseException:
                self.budget.release(memory)
                raise

        def now() -> bool:  # room free at once, while the candidate waits for more memory
            if background or not self._slots.try_acquire():
                return False
            if self.budget.try_acquire(memory):
                return True
            self._slots.release()
            return False

        admitted = False
        self.waiting += 1
        try:
            with anyio.move_on_after(self.wait_timeout):
                await gate.admit(owner, room, now)
                admitted = True
        finally:
            self.waiting -= 1
        if not admitted:
            self.rejected += 1
            raise ServiceUnavailable(
                "Image work is at capacity; try again shortly",
                retry_after=max(1, round(self.wait_timeout / 2)),
            )

    async def _dispatch(
        self,
        function: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        memory: int,
        timeout: float,  # noqa: ASYNC109
    ) -> T:
        release = memory > self.retire_above
        worker = await self._take_worker()
        message = (function, args, kwargs, release)
        try:
            await _send(worker, message)
        except OSError:  # it died while idle: not this job's doing, so one fresh worker
            worker.kill()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(worker.process.wait)
            self._processes.discard(worker.process)
            worker = await self._take_worker()
            await _send(worker, message)
        self._busy.add(worker)
        keep = False
        holds = release  # retire unless the worker shows it gave the memory back
        try:
            try:
                with anyio.move_on_after(timeout) as scope:
                    await anyio.wait_readable(worker.conn.fileno())
                if scope.cancelled_caught:
                    self.timeouts += 1
                    raise DecodeTimeout(
                        f"decoding took longer than {timeout:g} s; it was stopped",
                        timeout=timeout,
                    )
                _blocking(worker.conn)  # whole messages, however the loop left the socket
                outcome, rss, start_rss = worker.conn.recv()
            except (EOFError, OSError) as exc:
                raise await self._crashed(worker, exc) from None
            worker.jobs += 1
            if release and rss and start_rss:  # small jobs keep their worker, as always
                holds = rss - start_rss > self.retire_above
            kind = outcome[0]
            if kind == "ok":
                self.jobs_ok += 1
                keep = True
                result: T = outcome[1]
                return result
            if kind == "error":
                keep = True
                raise _rebuild(outcome[1], outcome[2], outcome[3])
            if kind == "memory":
                self.memory_kills += 1
                raise InvalidImage(
                    "Decoding this image needs more memory than an image worker may use",
                    reason=outcome[1],
                )
            self.crashes += 1
            raise ImageWorkerCrashed("The image worker failed on this file", reason=str(outcome[1]))
        finally:
            self._busy.discard(worker)
            if keep and not self._closed and worker.jobs < self.max_jobs_per_worker:
                if holds:
                    self.retired += 1
                    worker.retire()
                    self._gone.append(worker.process)
                else:
                    self._idle.append(worker)
            else:
                worker.kill()
                with anyio.CancelScope(shield=True):  # reap it now: no zombie, no leak
                    await anyio.to_thread.run_sync(worker.process.wait)
                self._processes.discard(worker.process)

    async def _crashed(self, worker: _Worker, exc: BaseException) -> ImageWorkerCrashed:
        code = worker.process.poll()
        if code is None:  # its pipe closed first: the exit status follows at once
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                code = await anyio.to_thread.run_sync(worker.process.wait, abandon_on_cancel=True)
        if code is not None and code < 0:
            how = f"killed by signal {-code}"
        elif code is not None:
            how = f"exited with status {code}"
        else:
            how = f"its pipe failed ({type(exc).__name__})"
        self.crashes += 1
        if code == -9:
            self.memory_kills += 1  # SIGKILL we did not send: the kernel's OOM killer
        log.warning("image worker %s %s during a job", worker.process.pid, how)
        return ImageWorkerCrashed(f"The image worker stopped during this file: {how}", reason=how)

    async def _take_worker(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.process.poll() is None:
                return worker
            worker.kill()
            self._gone.append(worker.process)
        self._reap()
        with anyio.CancelScope(shield=True):  # a started process must not be lost
            spawned = await anyio.to_thread.run_sync(self._spawn)
        return spawned

    def _spawn(self) -> _Worker:
        """A fresh interpreter (not a fork of the server, which has threads and an event
        loop; not multiprocessing, which would re-import the host's ``__main__``)."""
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _WORKER_CODE,
                    str(child.fileno()),
                    str(self.worker_memory or 0),
                ],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a Ctrl-C meant for the server is not the workers'
            )
        finally:
            child.close()
        self._processes.add(process)
        self.workers_started += 1
        return _Worker(process, Connection(parent.detach()))

    def _reap(self) -> None:
        still = []
        for process in self._gone:
            if process.poll() is None:
                still.append(process)
            else:
                self._processes.discard(process)
        self._gone = still

    # shutting down ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop every worker; jobs still running get :class:`ImageWorkerCrashed`."""
        self._closed = True
        for worker in self._idle:
            worker.retire()
            self._gone.append(worker.process)
        self._idle.clear()
        for worker in list(self._busy):
            worker.process.kill()  # their jobs see EOF and clean up
        processes = list(self._processes)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_join_all, processes)
        self._processes.clear()
        self._gone.clear()


def _join_all(processes: list[subprocess.Popen[bytes]], grace: float = 2.0) -> None:
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _kill_all(processes: set[subprocess.Popen[bytes]]) -> None:
    """Last resort when an engine is dropped without ``aclose``."""
    for process in list(processes):
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()


def _rebuild(cls: type[ChitramError], message: str, details: dict[str, Any]) -> ChitramError:
    try:
        return cls(message, **details)
    except TypeError:  # a subclass with its own constructor: keep the code that matters
        return InvalidImage(message, **details)


def _blocking(conn: Connection) -> None:
    """Make the worker's socket blocking again. An event loop may switch a descriptor it
    watched to non-blocking (uvloop does, for ``wait_readable``); ``Connection`` then fails a
    message that does not fit the socket buffer with BlockingIOError."""
    os.set_blocking(conn.fileno(), True)


async def _send(worker: Any, message: tuple[Any, ...]) -> None:
    """Hand the job to the worker from a thread: a message carrying an upload's bytes is larger
    than the pipe holds, and its ``send`` blocks until the worker has read the rest. On the
    event loop that wait (the worker process scheduled, reading) stalled every request: twelve
    240 KB uploads at once held ``/health/live`` up for ~150 ms."""
    _blocking(worker.conn)
    await anyio.to_thread.run_sync(worker.conn.send, message)
