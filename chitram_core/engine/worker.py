"""The loop a worker process runs: receive a job, run it, send the outcome back.

A job is ``(function, args, kwargs, release)`` pickled over a socket pair (the worker is
started with ``python -c`` by :class:`~chitram_core.engine.pool.ImageEngine`). The function must
be a module-level callable (pickled by reference). With ``release`` set (a large job), the worker
hands its memory back to the OS after the job (:func:`release_memory`). The reply is
``(outcome, rss, start_rss)``: the worker's resident size after the job and when it started
(0 where /proc is missing), so the parent can retire a worker that still holds memory. The
outcome is one of:

- ``("ok", result)``
- ``("error", class, message, details)`` for a :class:`~chitram_core.errors.ChitramError`
- ``("memory", text)`` when the job hit the worker's address-space cap (``MemoryError``)
- ``("crash", text)`` for any other exception (a bug in the job, not the input)

The worker caps its own address space with ``RLIMIT_AS`` before taking any job, so a decoder
that allocates without bound fails in this process, never in the server.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import resource
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from chitram_core.errors import ChitramError


def address_space() -> int:
    """This process's current virtual size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def resident_size() -> int:
    """This process's resident set size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None elsewhere: musl, macOS)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
        return trim
    return None


_TRIM: Any = None
_TRIM_LOOKED_UP = False


def release_memory() -> None:
    """Give memory a finished job left behind back to the OS: collect cycles, empty Pillow's
    block cache (only when Pillow is loaded) and trim glibc's heap."""
    global _TRIM, _TRIM_LOOKED_UP
    gc.collect()
    pil = sys.modules.get("PIL.Image")
    clear = getattr(getattr(pil, "core", None), "clear_cache", None)
    if clear is not None:
        with contextlib.suppress(Exception):
            clear()
    if not _TRIM_LOOKED_UP:
        _TRIM_LOOKED_UP = True
        _TRIM = _malloc_trim()
    if _TRIM is not None:
        _TRIM(0)


def cap_address_space(extra: int | None) -> None:
    """Allow ``extra`` bytes of address space above what the idle worker already maps."""
    if extra is None:
        return
    base = address_space()
    if base == 0:
        return
    limit = base + extra
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def serve() -> None:
    """Entry point of ``python -c``: ``argv`` is the socket's fd and the memory cap."""
    fd, cap = int(sys.argv[1]), int(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    main(Connection(fd), cap or None)


def main(conn: Connection, memory_cap: int | None) -> None:
    """Serve jobs until the parent closes its end of the pipe."""
    cap_address_space(memory_cap)
    start = resident_size()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        except MemoryError:
            # The job itself did not fit: say so and exit (state after ENOMEM is suspect).
            _send(conn, ("memory", "the job's input does not fit the worker's memory cap"), start)
            return
        release = len(job) > 3 and bool(job[3])
        outcome = _run(job)
        del job
        if release:
            release_memory()
        try:
            conn.send((outcome, resident_size(), start))
        except MemoryError:
            _send(conn, ("memory", "the job's result does not fit the worker's memory cap"), start)
            return
        except OSError:
            return


def _run(job: Any) -> tuple[Any, ...]:
    try:
        function, args, kwargs = job[:3]
        return ("ok", function(*args, **kwargs))
    except ChitramError as exc:
        return ("error", type(exc), exc.message, dict(exc.details))
    except MemoryError:
        return ("memory", "the decoder ran out of the worker's memory cap")
    except Exception as exc:  # reported to the caller as a crashed job, never swallowed
        return ("crash", f"{type(exc).__name__}: {str(exc)[:200]}")


def _send(conn: Connection, message: tuple[Any, ...], start: int) -> None:
    # If even this fails, the parent sees the pipe close and reports a crashed worker.
    with contextlib.suppress(OSError, MemoryError):
        conn.send((message, 0, start))
