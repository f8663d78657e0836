"""The async engine, its sessions, and migrations."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chitram_core.db.sqlite_driver import chitram_url
from chitram_core.errors import ConfigurationError, ServiceUnavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

PING_AFTER_IDLE = 1.0
"""Seconds a pooled connection may rest before its next checkout pings the server first. A
connection back from work a moment ago is taken as alive unless the driver has seen the server
close it: the ping (three round trips on asyncpg) would otherwise double the round trips of a
short transaction; one that died unseen meanwhile fails its statement, which is a 503
(:class:`DatabaseUnavailable`) like any outage."""


class DatabaseUnavailable(ServiceUnavailable):
    """The database could not be reached, or dropped the connection mid-statement: 503 with
    ``Retry-After``, never a 500 (the transaction was rolled back; nothing was recorded)."""

    default_message = "The database is unavailable; retry shortly"


def _is_outage(exc: DBAPIError) -> bool:
    """The connection is gone, not the statement wrong: SQLAlchemy saw the disconnect (which
    :func:`_outage_is_a_disconnect` extends), or the driver's error says so."""
    return bool(exc.connection_invalidated) or _is_outage_error(exc.orig)


def _is_outage_error(error: BaseException | None) -> bool:
    """The server said the connection is over (SQLSTATE class 08, connection exception; 57P,
    operator intervention: a terminated backend, a shutdown, a server not yet accepting
    connections), or the driver found it closed or stuck. The server's ``57P01`` can arrive as
    the answer to the next statement before the driver has noticed the closed socket."""
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(code, str) and code.startswith(("08", "57P")):
        return True
    message = str(error)
    # asyncpg's "cannot switch to state N; another operation (M) is in progress": the protocol
    # is mid-way through an answer the terminated server never finished.
    return (
        "connection is closed" in message
        or ("another operation" in message and "is in progress" in message)
        or isinstance(error, OSError)
    )


def _outage_is_a_disconnect(context: ExceptionContext) -> None:
    """SQLAlchemy's ``handle_error`` hook: an outage the dialect does not know as one (a
    ``57P01`` answer, asyncpg's protocol stuck mid-answer) counts as a disconnect, so the pool
    drops that connection and the others opened before it. Otherwise the connection went back
    to the pool and the next checkout (not pinged when it rested a moment:
    :data:`PING_AFTER_IDLE`) failed on it again."""
    if not context.is_disconnect and _is_outage_error(context.original_exception):
        context.is_disconnect = True


class Database:
    """Owns the engine; ``transaction()`` is the unit of work every repository runs in.

    Connections are opened and closed explicitly, with the close shielded from cancellation,
    instead of through SQLAlchemy's ``async with`` (which spawns an asyncio task to finish the
    close): so the same code runs on asyncio and on trio.
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        parsed = chitram_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        self._checkouts: anyio.Semaphore | None = None
        self._write_lock: anyio.Lock | None = None
        self._first_connect: anyio.Lock | None = anyio.Lock()
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
            # SQLite has one writer. Writers of this process queue here, in order, before they
            # take a connection (so a queue of writers never holds the pool's connections
            # while readers wait), instead of in SQLite's busy handler, which polls with sleeps
            # of up to 100 ms. Other processes still meet at SQLite's lock (busy_timeout), on
            # the connections' threads. Checkouts wait here, not in SQLAlchemy's pool (whose
            # queue is asyncio's): the pool always has a connection for a checkout let in.
            self._write_lock = anyio.Lock()
            self._checkouts = anyio.Semaphore(pool_size)
            if self._is_file(database):
                kwargs.update(pool_size=pool_size, max_overflow=0)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
            kwargs["connect_args"] = {"timeout": 10, "command_timeout": 30}
        # SQLite goes through our driver (one thread hop per statement, see sqlite_driver).
        # Through the module: tracing (extra ``otel``) wraps it after this module is imported.
        self.engine: AsyncEngine = sa_asyncio.create_async_engine(parsed, **kwargs)
        self._autocommit: tuple[AsyncEngine, AsyncEngine] | None = None
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)
        else:
            event.listen(self.engine.sync_engine, "handle_error", _outage_is_a_disconnect)
            event.listen(self.engine.sync_engine, "checkin", _rested_since)
            event.listen(
                self.engine.sync_engine, "checkout", _pinger(self.engine.sync_engine.dialect)
            )

    @staticmethod
    def _is_file(database: str | None) -> bool:
        return bool(database) and database != ":memory:" and "mode=memory" not in str(database)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _reads(self) -> AsyncEngine:
        """Where reads (``connect``) go. On PostgreSQL, the same pool with each statement its
        own transaction: no BEGIN and ROLLBACK round trips around them (under READ COMMITTED
        a transaction gives a series of reads no more consistent a view than that). Derived
        from ``engine`` as it is now, so an engine swapped in is the one reads use."""
        engine = self.engine
        if self.dialect == "sqlite":
            return engine
        if self._autocommit is None or self._autocommit[0] is not engine:
            self._autocommit = (engine, engine.execution_options(isolation_level="AUTOCOMMIT"))
        return self._autocommit[1]

    @asynccontextmanager
    async def _connection(self, *, read: bool = False) -> AsyncIterator[AsyncConnection]:
        engine = self._reads() if read else self.engine
        try:
            if self._checkouts is None:
                async with self._open(engine) as conn:
                    yield conn
                return
            async with self._checkouts, self._open(engine) as conn:
                yield conn
        except DBAPIError as exc:
            # The server went away under a statement (restarted, failed over, the connection
            # terminated): the pool drops the connection, and the caller may try again.
            if self.dialect != "sqlite" and _is_outage(exc):
                raise DatabaseUnavailable() from exc
            raise

    @asynccontextmanager
    async def _open(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        conn = engine.connect()
        try:
            if self._first_connect is None:
                await conn.start()
            else:
                # SQLAlchemy guards its first connect (the dialect's setup) with an asyncio
                # lock; one at a time here, so it is never contended (trio has no asyncio lock).
                async with self._first_connect:
                    await conn.start()
                self._first_connect = None
        except (OSError, DBAPIError) as exc:
            if self.dialect == "sqlite":
                raise  # a file that cannot be opened is a configuration error, not an outage
            raise DatabaseUnavailable() from exc
        try:
            yield conn
        except DBAPIError as exc:
            if self.dialect != "sqlite" and not exc.connection_invalidated and _is_outage(exc):
                # Never back to the pool in a state nobody knows: the pool opens a new one.
                with anyio.CancelScope(shield=True):
                    await conn.invalidate(exc)
            raise
        finally:
            with anyio.CancelScope(shield=True):  # the connection goes back to the pool whole
                await conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction: committed on exit, rolled back on error."""
        if self._write_lock is None:
            async with self._connection() as conn:
                conn = await conn.execution_options(chitram_write=True)
                async with conn.begin():
                    yield conn
            return
        # The lock is taken before the connection and held for the transaction only.
        async with self._write_lock, self._connection() as conn:
            conn = await conn.execution_options(chitram_write=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def one_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a write that is a single statement (atomic on its own): on
        PostgreSQL it commits by itself, with no BEGIN and COMMIT round trips; elsewhere it is
        a :meth:`transaction` (where the caller may run several statements instead)."""
        if self.dialect != "postgresql":
            async with self.transaction() as conn:
                yield conn
            return
        async with self._connection(read=True) as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, without an explicit write transaction (on PostgreSQL each
        statement commits on its own: nothing written here would be rolled back)."""
        async with self._connection(read=True) as conn:
            yield conn

    async def ping(self) -> float:
        """Round-trip a query; the latency in milliseconds."""
        started = time.perf_counter()
        async with self.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision`` (in a worker thread: Alembic is sync)."""
        await anyio.to_thread.run_sync(upgrade_sync, self.url, revision)

    async def dispose(self) -> None:
        await self.engine.dispose()


_RESTED_SINCE = "chitram_rested_since"


def _rested_since(_dbapi_conn: Any, record: Any) -> None:
    record.info[_RESTED_SINCE] = time.monotonic()


def _pinger(dialect: Any) -> Callable[[Any, Any, Any], None]:
    def ping_if_rested(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        """Before a pooled connection goes to work: one the server closed (a restart, a
        terminated backend: the driver saw the socket close) is dropped without a round trip;
        one that rested more than :data:`PING_AFTER_IDLE` is pinged (a new connection has not
        rested and is not). Either way every pooled connection older than now is dropped, as
        ``pool_pre_ping`` does, and the pool opens a new one for this checkout."""
        closed = getattr(record.driver_connection, "is_closed", None)
        if callable(closed) and closed():
            raise InvalidatePoolError()
        since = record.info.get(_RESTED_SINCE)
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise InvalidatePoolError() from exc

    return ping_if_rested


class WALUnavailable(ConfigurationError):
    """The SQLite file cannot use write-ahead logging."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own transaction handling is turned off so "begin" below controls it.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    mode = str(cursor.fetchone()[0]).lower()
    if mode not in ("wal", "memory"):
        # Without WAL a reader blocks the writer and a writer every reader, and they wait in
        # SQLite's busy handler: refuse rather than run slowly and time out under load.
        cursor.execute("PRAGMA database_list")
        path = next((row[2] for row in cursor.fetchall() if row[1] == "main"), "") or "?"
        cursor.close()
        raise WALUnavailable(
            f"SQLite database {path} cannot use write-ahead logging (journal_mode stays "
            f"{mode!r}): put it on a local file system with shared memory (not NFS/SMB), "
            "or use PostgreSQL"
        )
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Write transactions take the lock up front (no deadlocking upgrade from read to write);
    # reads begin deferred, so under WAL they never wait for a writer.
    if conn.get_execution_options().get("chitram_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["database_url"] = url
    return cfg


def upgrade_sync(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)
