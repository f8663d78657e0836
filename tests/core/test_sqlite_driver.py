"""The SQLite driver (``sqlite+chitram``): a DB-API over one thread per connection, one hop per
statement. Specified at the level SQLAlchemy uses it: results, errors, transactions, the pool's
reset, cancellation and closing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from chitram_core.db import Database
from chitram_core.db.sqlite_driver import INLINE_SLICE, chitram_url

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    async with database.transaction() as conn:
        await conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    return database


def test_every_sqlite_url_is_served_by_this_driver_and_others_are_left_alone() -> None:
    assert chitram_url("sqlite+aiosqlite:///x.db").drivername == "sqlite+chitram"
    assert chitram_url("sqlite:///x.db").drivername == "sqlite+chitram"
    assert chitram_url("sqlite+aiosqlite://").drivername == "sqlite+chitram"
    url = "postgresql+asyncpg://u@127.0.0.1/test"
    assert chitram_url(url).drivername == "postgresql+asyncpg"


async def test_rows_lastrowid_rowcount_and_executemany(db: Database) -> None:
    assert db.engine.dialect.driver == "chitram"
    async with db.transaction() as conn:
        result = await conn.execute(sa.text("INSERT INTO t (name) VALUES ('a')"))
        assert result.lastrowid == 1
        await conn.execute(
            sa.text("INSERT INTO t (name) VALUES (:n)"), [{"n": "b"}, {"n": "c"}, {"n": "d"}]
        )
        updated = await conn.execute(sa.text("UPDATE t SET name = name || '!' WHERE id > 2"))
        assert updated.rowcount == 2
    async with db.connect() as conn:
        result = await conn.execute(sa.text("SELECT id, name FROM t ORDER BY id"))
        assert result.fetchone() == (1, "a")
        assert result.fetchmany(2) == [(2, "b"), (3, "c!")]
        assert result.fetchall() == [(4, "d!")]
        assert (await conn.execute(sa.text("SELECT name FROM t WHERE id = 9"))).first() is None
        assert await conn.scalar(sa.text("SELECT count(*) FROM t")) == 4


async def test_a_failed_statement_raises_the_dbapi_error_and_rolls_the_transaction_back(
    db: Database,
) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(sa.text("INSERT INTO t (name) VALUES ('x')"))
            await conn.execute(sa.text("INSERT INTO t (name) VALUES ('x')"))
    with pytest.raises(OperationalError):
        async with db.connect() as conn:
            await conn.execute(sa.text("SELECT nope FROM t"))
    async with db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM t")) == 0


async def test_a_read_connection_returned_to_the_pool_ends_its_transaction(
    db: Database, tmp_path: Path
) -> None:
    """The pool's reset rolls back what a reader left open, so it pins no old snapshot; with
    nothing open it needs no round trip."""
    async with db.connect() as conn:
        await conn.execute(sa.text("SELECT count(*) FROM t"))
        raw = await conn.get_raw_connection()
        dbapi = raw.dbapi_connection
        assert dbapi is not None
        assert dbapi.in_transaction
    assert not dbapi.in_transaction
    async with db.transaction() as conn:
        await conn.execute(sa.text("INSERT INTO t (name) VALUES ('new')"))
    async with db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM t")) == 1


async def test_writers_of_two_databases_on_one_file_wait_for_each_other(
    db: Database, tmp_path: Path
) -> None:
    """Another process's writer (here: another engine, with its own lock) holds SQLite's write
    lock; ours waits in the busy handler on its thread, the event loop keeps running."""
    other = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    ticks = 0
    done = anyio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        async with other.transaction() as held:
            await held.execute(sa.text("INSERT INTO t (name) VALUES ('first')"))

            async def second() -> None:
                async with db.transaction() as conn:
                    await conn.execute(sa.text("INSERT INTO t (name) VALUES ('second')"))
                done.set()

            tg.start_soon(second)
            await anyio.sleep(0.3)
            assert not done.is_set()
        await done.wait()
    assert ticks >= 20  # the loop ran while the second writer waited
    async with db.connect() as conn:
        names = (await conn.execute(sa.text("SELECT name FROM t ORDER BY id"))).scalars().all()
    assert names == ["first", "second"]
    await other.dispose()


async def test_a_cancelled_statement_leaves_the_connection_usable(db: Database) -> None:
    with anyio.move_on_after(0.05):
        async with db.connect() as conn:
            # A query that runs for a while on the connection's thread.
            await conn.execute(
                sa.text(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                    "WHERE x < 3000000) SELECT count(*) FROM c"
                )
            )
    async with db.transaction() as conn:
        await conn.execute(sa.text("INSERT INTO t (name) VALUES ('after')"))
    async with db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM t")) == 1


async def test_dispose_stops_every_connection_thread(tmp_path: Path) -> None:
    before = {t for t in threading.enumerate() if t.name == "chitram-sqlite"}
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/d.db")

    async def read() -> None:
        async with database.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
            await anyio.sleep(0.05)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(read)
    await database.dispose()

    def left() -> set[threading.Thread]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            alive = {t for t in threading.enumerate() if t.name == "chitram-sqlite"} - before
            if not alive:
                break
            time.sleep(0.01)
        return alive

    assert await anyio.to_thread.run_sync(left) == set()


async def test_a_write_transactions_statements_run_on_the_event_loop_and_the_rest_on_the_thread(
    db: Database,
) -> None:
    """Once ``BEGIN IMMEDIATE`` holds SQLite's write lock (taken on the connection's thread,
    where waiting for another process is harmless), the transaction's statements cannot wait
    for a lock: they run where the caller is, without a hop. Its commit, and every statement
    outside a write transaction, runs on the connection's thread."""

    def name_function(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.create_function(  # type: ignore[attr-defined]
            "thread_name", 0, lambda: threading.current_thread().name
        )

    sa.event.listen(db.engine.sync_engine, "connect", name_function)
    await db.engine.dispose()  # new connections, with the function
    here = threading.current_thread().name
    async with db.transaction() as conn:
        assert await conn.scalar(sa.text("SELECT thread_name()")) == here
        await conn.execute(sa.text("INSERT INTO t (name) VALUES (thread_name())"))
    async with db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT thread_name()")) == "chitram-sqlite"
        assert await conn.scalar(sa.text("SELECT name FROM t")) == here


async def test_a_long_write_transaction_on_the_event_loop_still_lets_other_tasks_run(
    db: Database,
) -> None:
    """Thousands of statements in one write transaction run on the loop; every couple of
    milliseconds (``INLINE_SLICE``) the loop gets a turn, as it would between hops."""
    assert INLINE_SLICE <= 0.005
    turns = 0
    running = True

    async def other_task() -> None:
        nonlocal turns
        while running:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
        await anyio.lowlevel.checkpoint()
        started = time.perf_counter()
        async with db.transaction() as conn:
            before = turns
            for n in range(3000):
                await conn.execute(sa.text("INSERT INTO t (name) VALUES (:n)"), {"n": str(n)})
            during = turns - before
        took = time.perf_counter() - started
        running = False
    assert took > 0.04  # long enough to tell
    assert during >= took / 0.02  # a turn at least every 20 ms
    async with db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM t")) == 3000
