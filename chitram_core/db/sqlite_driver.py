"""SQLite for SQLAlchemy's async extension: one thread per connection, one hop per statement.

SQLAlchemy drives SQLite asynchronously through ``aiosqlite``, whose every call is a round trip
to the connection's thread: creating a cursor, executing, fetching and closing it are four, and
a checkout's reset one more. Each round trip wakes a thread and then the event loop (a futex
and a self-pipe write); on a small virtual machine that costs ~100-200 µs of CPU, so a one-row
insert cost ~460 µs where the same statement through the synchronous driver costs ~30 µs
(``benchmarks/sqlite_driver.py``).

This driver keeps aiosqlite's model and changes the unit of work:

- one thread owns each ``sqlite3`` connection and runs **every** statement, in order, so the
  event loop never waits on SQLite's lock, a page read or a cache spill;
- a statement is executed, its rows fetched and its cursor closed in **one** call on that thread;
  the rows come back as a list (what SQLAlchemy's aiosqlite adapter did too);
- what nobody needs to wait for is posted to the thread without a wake-up of the loop: a
  deferred ``BEGIN`` (no lock, no I/O) and a reader's rollback (it only lets go of a snapshot);
- a caller cancelled while its statement runs interrupts it (``sqlite3.Connection.interrupt``),
  so a cancelled query does not keep the connection's thread busy;
- the hand-off works on asyncio and on trio: the thread wakes the waiting task with the running
  backend's own thread-safe call (see :mod:`chitram_core.eventloop`).

``Database`` selects it for every ``sqlite`` URL (``sqlite+aiosqlite://`` included: the URL
names the file, the driver is ours); it registers as ``sqlite+chitram``. It relies on
SQLAlchemy's pysqlite dialect and its async adaptation, so ``pyproject.toml`` bounds SQLAlchemy
to the minor versions it is tested with.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import pool
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import AdaptedConnection
from sqlalchemy.engine.url import URL
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

from chitram_core.eventloop import running_backend

T = TypeVar("T")
log = logging.getLogger(__name__)

DRIVER = "chitram"
"""The driver name of this dialect in a URL: ``sqlite+chitram:///path``."""

THREAD_NAME = "chitram-sqlite"


def _begins(operation: str) -> str | None:
    """``"write"`` for ``BEGIN IMMEDIATE``/``EXCLUSIVE`` (it takes the write lock, and may wait
    for it), ``"read"`` for any other ``BEGIN`` (deferred: no lock, no I/O), else None."""
    if operation[:5].upper() != "BEGIN":
        return None
    words = operation.upper().split()
    if len(words) > 1 and words[1] in ("IMMEDIATE", "EXCLUSIVE"):
        return "write"
    return "read"


class _Call:
    """One function for the connection's thread, and how to tell its caller the outcome."""

    __slots__ = ("cancelled", "function", "notify")

    def __init__(
        self, function: Callable[[], Any], notify: Callable[[bool, Any], None] | None
    ) -> None:
        self.function = function
        self.notify = notify
        self.cancelled = False


class _Skipped(Exception):
    """The caller was cancelled before its call started: it never ran."""


def _settle_asyncio(future: asyncio.Future[Any], ok: bool, result: Any) -> None:
    if future.cancelled():  # the caller gave up
        return
    if ok:
        future.set_result(result)
    else:
        future.set_exception(result)


def _settle_trio(box: list[tuple[bool, Any]], event: Any, ok: bool, result: Any) -> None:
    box.append((ok, result))
    event.set()


class _Thread:
    """One daemon thread running calls in the order they are posted.

    ``submitted`` is written only by callers and ``finished`` only by the thread, so ``idle``
    (the two equal) is safe to read without a lock: no call is queued or running. ``running``
    is the call on the thread right now; a cancelled caller whose call is running interrupts
    the connection (the thread sets ``running`` before it checks ``cancelled``, the caller sets
    ``cancelled`` before it reads ``running``: one of them sees the other).
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self.submitted = 0
        self.finished = 0
        self.running: _Call | None = None
        self.connection: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._serve, name=THREAD_NAME, daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        return self.submitted == self.finished

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            self.running = call
            ok = True
            result: Any
            if call.cancelled:
                ok, result = False, _Skipped()
            else:
                try:
                    result = call.function()
                except BaseException as exc:  # handed to the caller, raised there
                    ok, result = False, exc
            self.running = None
            self.finished += 1
            notify = call.notify
            del call
            if notify is not None:
                with contextlib.suppress(RuntimeError):  # the loop or the run has ended
                    notify(ok, result)
            elif not ok and not isinstance(result, _Skipped):
                log.debug("A posted SQLite call failed: %r", result)
            del result, notify

    def _cancel(self, call: _Call) -> None:
        call.cancelled = True
        connection = self.connection
        if self.running is call and connection is not None:
            connection.interrupt()

    async def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the thread and wait for it, on asyncio or trio."""
        if running_backend() == "trio":
            return await self._call_trio(function)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def notify(ok: bool, result: Any) -> None:
            loop.call_soon_threadsafe(_settle_asyncio, future, ok, result)

        call = _Call(function, notify)
        self.submitted += 1
        self._calls.put(call)
        try:
            return await future
        except BaseException:
            if not future.done() or future.cancelled():
                self._cancel(call)
            raise

    async def _call_trio(self, function: Callable[[], T]) -> T:
        import trio

        token = trio.lowlevel.current_trio_token()
        event = trio.Event()
        box: list[tuple[bool, Any]] = []

        def notify(ok: bool, result: Any) -> None:
            token.run_sync_soon(_settle_trio, box, event, ok, result)

        call = _Call(function, notify)
        self.submitted += 1
        self._calls.put(call)
        try:
            await event.wait()
        except BaseException:
            if not box:
                self._cancel(call)
            raise
        ok, result = box[0]
        if ok:
            return result  # type: ignore[no-any-return]
        raise result

    def post(self, function: Callable[[], Any]) -> None:
        """Run ``function`` on the thread without waiting for it (from any thread)."""
        self.submitted += 1
        self._calls.put(_Call(function, None))

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
        if begins == "read":  # a deferred BEGIN takes no lock and does no I/O: nobody waits
            adapt._post(run)
            rows: list[Any] = []
            self.description, self.rowcount, self.lastrowid = None, -1, None
        else:  # BEGIN IMMEDIATE may wait for another process's writer: on the thread too
            self.description, rows, self.rowcount, self.lastrowid = adapt._call(run)
            if begins == "write":
                adapt._writing = True
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
        self.rowcount, self.lastrowid = self._adapt._call(run)

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
    so that its ``in_transaction`` flag can be read here and ``interrupt()`` called; every
    statement on it runs on the thread.
    """

    __slots__ = ("_closed", "_failed", "_sqlite", "_thread", "_writing")

    def __init__(self, thread: _Thread, connection: sqlite3.Connection) -> None:
        self._thread = thread
        self._sqlite = connection
        self._connection = connection  # type: ignore[assignment]  # SQLAlchemy's driver_connection
        self._closed = False
        self._writing = False  # in a transaction begun with BEGIN IMMEDIATE (holds the lock)
        self._failed: BaseException | None = None  # what a posted call raised, for the next

    def _call(self, function: Callable[[], T]) -> T:
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        return await_only(self._thread.call(function))

    def _post(self, function: Callable[[], Any]) -> None:
        """``function`` on the thread, in order, without waiting; what it raises is raised by
        the next call that waits."""
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

        def run() -> None:
            try:
                function()
            except BaseException as exc:
                self._failed = exc

        self._thread.post(run)

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
            if self._writing:  # may restore pages and lets go of the write lock: wait for it
                self._call(self._sqlite.rollback)
            elif not self._closed:  # a reader's only lets go of its snapshot; what follows
                self._thread.post(self._sqlite.rollback)  # queues behind it
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
        thread.connection = connection
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
    """``url`` with this driver when it names an SQLite database; a PostgreSQL URL without a
    driver (``postgresql://``, ``postgres://``, as hosting services hand them out) with asyncpg,
    the driver of the ``postgres`` extra; else unchanged."""
    from sqlalchemy.engine import make_url

    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        register()
        return parsed.set(drivername=f"sqlite+{DRIVER}")
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    return parsed


dialect = SQLiteDialectChitram
