"""The async engine, its sessions, and migrations."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chitram_core.db.sqlite_driver import chitram_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Database:
    """Owns the engine; ``transaction()`` is the unit of work every repository runs in."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            kwargs["connect_args"] = {"timeout": 10, "command_timeout": 30}
        # SQLite goes through our driver (one thread hop per statement, see sqlite_driver).
        # Through the module: tracing (extra ``otel``) wraps it after this module is imported.
        self.engine: AsyncEngine = sa_asyncio.create_async_engine(chitram_url(url), **kwargs)
        # SQLite has one writer. Writers of this process queue here, in order, instead of in
        # SQLite's busy handler, which polls with sleeps of up to 100 ms (the lock sits idle
        # while they sleep). Other processes still meet at SQLite's lock and busy_timeout.
        self._write_lock = anyio.Lock() if self.dialect == "sqlite" else None
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin_immediate)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction: committed on exit, rolled back on error."""
        if self._write_lock is None:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(chitram_write=True)
                async with conn.begin():
                    yield conn
            return
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(chitram_write=True)
            async with self._write_lock, conn.begin():  # the lock is held for the transaction only
                yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, without an explicit write transaction."""
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> float:
        """Round-trip a query; the latency in milliseconds."""
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision`` (in a worker thread: Alembic is sync)."""
        await anyio.to_thread.run_sync(upgrade_sync, self.url, revision)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own transaction handling is turned off so "begin" below controls it.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
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
