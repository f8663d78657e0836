"""SQLite for SQLAlchemy's asyncio extension with at most one thread hop per statement.

SQLAlchemy drives SQLite asynchronously through ``aiosqlite``, whose every call is a round trip
to the connection's thread: creating a cursor, executing, fetching and closing it are four, and
a checkout's reset one more. Each round trip wakes a thread and then the event loop (a futex
and a self-pipe write); on a small virtual machine that costs ~100-200 µs of CPU, so a one-row
insert cost ~460 µs where the same statement through the synchronous driver costs ~30 µs
(``benchmarks/sqlite_driver.py``). An upload makes about ten statements, so this was the
largest part of the server's CPU per upload.

This driver keeps aiosqlite's model (one thread owns each ``sqlite3`` connection and runs its
calls in order, so the event loop does not wait on SQLite's lock or disk) and changes the unit
of work: a statement is executed, its rows fetched and its cursor closed in **one** call on
that thread. The rows come back as a list (what SQLAlchemy's aiosqlite adapter did too: it
fetched every row at once), so ``fetchone``/``fetchall`` are plain reads.

What cannot wait needs no hop at all and runs on the caller's thread: a deferred ``BEGIN``,
a reader's rollback (or none, when nothing is open), and the statements of a write transaction
once ``BEGIN IMMEDIATE`` (on the thread: it may wait for another process's writer) holds
SQLite's write lock. ``COMMIT`` always goes to the thread (it may checkpoint the WAL). See
docs/decisions.md, "SQLite through our own SQLAlchemy driver".

``Database`` selects it for every ``sqlite`` URL (``sqlite+aiosqlite://`` included: the URL
names the file, the driver is ours); it registers as ``sqlite+chitram``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import pool
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import AdaptedConnection
from sqlalchemy.engine.url import URL
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

T = TypeVar("T")

DRIVER = "chitram"
"""The driver name of this dialect in a URL: ``sqlite+chitram:///path``."""


def _begins(operation: str) -> str | None:
    """``"write"`` for ``BEGIN IMMEDIATE``/``EXCLUSIVE`` (it takes the write lock, and may wait
    for it), ``"read"`` for any other ``BEGIN`` (deferred: no lock, no I/O), else None."""
    if operation[:5].upper() != "BEGIN":
        return None
    words = operation.upper().split()
    if len(words) > 1 and words[1] in ("IMMEDIATE", "EXCLUSIVE"):
        return "write"
    return "read"


INLINE_SLICE = 0.002
"""Seconds of statements run on the event loop in a row before the loop gets a turn."""


async def _now(function: Callable[[], T]) -> T:
    return function()


async def _after_the_loop(function: Callable[[], T]) -> T:
    await asyncio.sleep(0)
    return function()


def _settle(future: asyncio.Future[Any], ok: bool, result: Any) -> None:
    if future.cancelled():  # the caller gave up; the call ran anyway (as aiosqlite's do)
        return
    if ok:
        future.set_result(result)
    else:
        future.set_exception(result)


class _Thread:
    """One daemon thread running calls in the order they are posted.

    ``submitted`` is written only by callers and ``finished`` only by the thread, so
    ``idle`` (the two equal) is safe to read without a lock: no call is queued or running.
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[
            tuple[Callable[[], Any], asyncio.AbstractEventLoop | None, asyncio.Future[Any] | None]
            | None
        ] = queue.SimpleQueue()
        self.submitted = 0
        self.finished = 0
        self._thread = threading.Thread(target=self._serve, name="chitram-sqlite", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        return self.submitted == self.finished

    def _serve(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            function, loop, future = item
            ok = True
            try:
                result = function()
            except BaseException as exc:  # handed to the caller, raised there
                ok, result = False, exc
            self.finished += 1
            del function, item
            if loop is None or future is None:
                continue
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, ok, result)
            del result, future

    async def call(self, function: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.submitted += 1
        self._calls.put((function, loop, future))
        return await future

    def post(self, function: Callable[[], Any]) -> None:
        """Run ``function`` on the thread without waiting for it (from any thread)."""
        self.submitted += 1
        self._calls.put((function, None, None))

    def stop(self) -> None:
        """Let the thread exit once the calls already posted have run."""
        self._calls.put(None)


class AsyncAdaptChitramCursor:
    """A DB-API cursor over rows fetched in the same hop as the statement."""

    server_side = False

    def __init__(self, connection: AsyncAdaptChitramConnection) -> None:
        self._adapt = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1
        self._rows: collections.deque[Any] = collections.deque()

    def execute(self, operation: str, parameters: Any = None) -> None:
        conn = self._adapt._sqlite

        def run() -> tuple[Any, list[Any], int, int | None]:
            cursor = conn.cursor()
            try:
                if parameters is None:
                    cursor.execute(operation)
                else:
                    cursor.execute(operation, parameters)
                description = cursor.description
                rows = cursor.fetchall() if description else []
                return description, rows, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        adapt = self._adapt
        begins = _begins(operation)
        if begins == "write":  # may wait for another process's writer: on the thread
            self.description, rows, self.rowcount, self.lastrowid = adapt._call(run)
            adapt._writing = True
        else:
            inline = adapt._writing or begins == "read"
            self.description, rows, self.rowcount, self.lastrowid = adapt._run(run, inline)
        self._rows = collections.deque(rows)

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> None:
        conn = self._adapt._sqlite

        def run() -> tuple[int, int | None]:
            cursor = conn.cursor()
            try:
                cursor.executemany(operation, seq_of_parameters)
                return cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self.description = None
        self._rows = collections.deque()
        self.rowcount, self.lastrowid = self._adapt._run(run, self._adapt._writing)

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(self.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        """SQLAlchemy's asyncio results call this before leaving the greenlet; the rows are
        already here and the ``sqlite3`` cursor already closed."""

    def setinputsizes(self, *sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass


class AsyncAdaptChitramConnection(AdaptedConnection):
    """The DB-API connection SQLAlchemy's pool holds: a ``sqlite3`` connection and its thread.

    Methods are called from SQLAlchemy's greenlet and wait for the thread with
    ``await_only``. The ``sqlite3`` connection is opened with ``check_same_thread=False`` only
    so that its ``in_transaction`` flag can be read here; every call on it runs on the thread.
    """

    __slots__ = ("_closed", "_sqlite", "_thread", "_writing", "_yielded")

    def __init__(self, thread: _Thread, connection: sqlite3.Connection) -> None:
        self._thread = thread
        self._sqlite = connection
        self._connection = connection  # type: ignore[assignment]  # SQLAlchemy's driver_connection
        self._closed = False
        self._writing = False  # in a transaction begun with BEGIN IMMEDIATE (holds the lock)
        self._yielded = time.perf_counter()  # when this connection last let the loop run

    def _call(self, function: Callable[[], T]) -> T:
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return await_only(self._thread.call(function))

    def _run(self, function: Callable[[], T], inline: bool) -> T:
        """``function`` right here, on the caller's thread, when ``inline`` and it cannot wait:
        nothing queued or running on the connection's thread, and either a deferred ``BEGIN``
        (it takes no lock and does no I/O) or a statement of a write transaction that holds
        SQLite's write lock (still open: an error SQLite answered with a rollback ends it)."""
        if (
            inline
            and self._thread.idle
            and not self._closed
            and (not self._writing or self._sqlite.in_transaction)
        ):
            # Still through ``await_only``: SQLAlchemy's asyncio layer checks that an async
            # driver awaited, and the coroutine runs at once, on the event loop's thread. A
            # long run of such statements (a transaction of thousands) lets the loop run
            # every INLINE_SLICE seconds, as a hop would have.
            now = time.perf_counter()
            if now - self._yielded < INLINE_SLICE:
                return await_only(_now(function))
            self._yielded = now
            return await_only(_after_the_loop(function))
        try:
            return self._call(function)
        finally:
            self._yielded = time.perf_counter()

    def cursor(self, server_side: bool = False) -> AsyncAdaptChitramCursor:
        return AsyncAdaptChitramCursor(self)

    def execute(self, operation: str, parameters: Any = None) -> AsyncAdaptChitramCursor:
        cursor = self.cursor()
        cursor.execute(operation, parameters)
        return cursor

    @property
    def isolation_level(self) -> str | None:
        return self._sqlite.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        conn = self._sqlite
        self._call(lambda: setattr(conn, "isolation_level", value))

    @property
    def in_transaction(self) -> bool:
        return self._sqlite.in_transaction

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._call(functools.partial(self._sqlite.create_function, *args, **kwargs))

    def commit(self) -> None:
        # On the thread: a commit can checkpoint the WAL (writes and an fsync). A failed
        # commit leaves the transaction a writer's, for the rollback that follows.
        self._call(self._sqlite.commit)
        self._writing = False

    def rollback(self) -> None:
        try:
            if self._thread.idle and not self._sqlite.in_transaction:
                return  # nothing queued or running, so the flag is current: nothing to undo
            # A reader's rollback only lets go of its snapshot; a writer's may restore pages.
            self._run(self._sqlite.rollback, inline=not self._writing)
        finally:
            self._writing = False

    def close(self) -> None:
        if self._closed:
            return
        if not in_greenlet():  # garbage collection, a synchronous dispose: don't wait
            self.terminate()
            return
        self._closed = True
        try:
            await_only(self._thread.call(self._sqlite.close))
        finally:
            self._thread.stop()

    def terminate(self) -> None:
        """Close without waiting (SQLAlchemy calls this outside a greenlet too): the thread
        closes the connection after whatever it is running, then exits."""
        if self._closed:
            return
        self._closed = True
        self._thread.post(self._sqlite.close)
        self._thread.stop()


class _DBAPI:
    """The module-like object SQLAlchemy's dialect treats as its DB-API."""

    paramstyle = "qmark"

    def __init__(self) -> None:
        for name in (
            "DatabaseError",
            "DataError",
            "Error",
            "IntegrityError",
            "InterfaceError",
            "InternalError",
            "NotSupportedError",
            "OperationalError",
            "ProgrammingError",
            "Warning",
            "sqlite_version",
            "sqlite_version_info",
            "PARSE_COLNAMES",
            "PARSE_DECLTYPES",
            "Binary",
        ):
            setattr(self, name, getattr(sqlite3, name))

    def connect(self, *args: Any, **kwargs: Any) -> AsyncAdaptChitramConnection:
        kwargs["check_same_thread"] = False
        thread = _Thread()
        try:
            opened = thread.call(functools.partial(sqlite3.connect, *args, **kwargs))
            connection = await_only(opened)
        except BaseException:
            thread.stop()
            raise
        return AsyncAdaptChitramConnection(thread, connection)


class SQLiteDialectChitram(SQLiteDialect_pysqlite):
    """``sqlite+chitram``: the pysqlite dialect over :class:`AsyncAdaptChitramConnection`."""

    driver = DRIVER
    supports_statement_cache = True
    is_async = True
    has_terminate = True
    supports_server_side_cursors = False

    @classmethod
    def import_dbapi(cls) -> Any:
        return _DBAPI()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def get_driver_connection(self, connection: Any) -> Any:
        return connection._sqlite

    def do_terminate(self, dbapi_connection: Any) -> None:
        dbapi_connection.terminate()


def register() -> None:
    """Make ``sqlite+chitram`` known to SQLAlchemy (idempotent)."""
    from sqlalchemy.dialects import registry

    registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialectChitram")


def chitram_url(url: str | URL) -> URL:
    """``url`` with this driver when it names an SQLite database, else unchanged."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        register()
        return parsed.set(drivername=f"sqlite+{DRIVER}")
    return parsed


dialect = SQLiteDialectChitram
