"""The SQLite driver (``sqlite+chitram``): a DB-API over one thread per connection, one hop per
statement. Specified at the level SQLAlchemy uses it: results, errors, transactions, the pool's
reset, cancellation and closing; on asyncio and on trio."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from chitram_core.db import Database
from chitram_core.db.database import WALUnavailable
from chitram_core.db.sqlite_driver import THREAD_NAME, chitram_url
from chitram_core.errors import ConfigurationError

pytestmark = pytest.mark.anyio

COUNT_TO_MANY = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000000) "
    "SELECT count(*) FROM c"
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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
    """The pool's reset rolls back what a reader left open, so it pins no old snapshot (posted
    to the connection's thread: nobody waits for it); with nothing open it needs no hop."""
    async with db.connect() as conn:
        await conn.execute(sa.text("SELECT count(*) FROM t"))
        raw = await conn.get_raw_connection()
        dbapi = raw.dbapi_connection
        assert dbapi is not None
        assert dbapi.in_transaction
    with anyio.fail_after(2):
        while dbapi.in_transaction:  # noqa: ASYNC110 (a flag of another thread)
            await anyio.sleep(0.001)
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


async def test_a_cancelled_query_is_interrupted_and_the_connection_stays_usable(
    db: Database,
) -> None:
    """A query that would run for minutes is interrupted when its caller is cancelled: the
    connection's thread is free again at once, and the next statements run."""
    started = time.perf_counter()
    with anyio.move_on_after(0.2):
        async with db.connect() as conn:
            await conn.execute(sa.text(COUNT_TO_MANY))
    async with db.transaction() as conn:
        await conn.execute(sa.text("INSERT INTO t (name) VALUES ('after')"))
    async with db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM t")) == 1
    assert time.perf_counter() - started < 5  # counting to 2e8 takes far longer


async def test_a_slow_statement_in_a_write_transaction_does_not_stop_the_event_loop(
    db: Database,
) -> None:
    """Every statement runs on the connection's thread, a write transaction's included: a
    deliberately slow one (a page read on a slow disk, a cache spill) leaves the loop free."""

    def slow_function(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.create_function(  # type: ignore[attr-defined]
            "slow", 1, lambda seconds: time.sleep(seconds) or seconds
        )

    sa.event.listen(db.engine.sync_engine, "connect", slow_function)
    await db.engine.dispose()
    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.02)
        async with db.transaction() as conn:
            await conn.execute(sa.text("INSERT INTO t (name) VALUES (slow(0.5))"))
        done.set()
    assert len(gaps) >= 20
    assert max(gaps) < 0.25  # the loop answered throughout the half-second statement


async def test_dispose_stops_every_connection_thread(tmp_path: Path) -> None:
    before = {t for t in threading.enumerate() if t.name == THREAD_NAME}
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
            alive = {t for t in threading.enumerate() if t.name == THREAD_NAME} - before
            if not alive:
                break
            time.sleep(0.01)
        return alive

    assert await anyio.to_thread.run_sync(left) == set()


async def test_every_statement_runs_on_the_connections_thread(db: Database) -> None:
    """Reads, a write transaction's statements and its commit: none on the event loop's
    thread."""

    def name_function(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.create_function(  # type: ignore[attr-defined]
            "thread_name", 0, lambda: threading.current_thread().name
        )

    sa.event.listen(db.engine.sync_engine, "connect", name_function)
    await db.engine.dispose()  # new connections, with the function
    async with db.transaction() as conn:
        assert await conn.scalar(sa.text("SELECT thread_name()")) == THREAD_NAME
        await conn.execute(sa.text("INSERT INTO t (name) VALUES (thread_name())"))
    async with db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT thread_name()")) == THREAD_NAME
        assert await conn.scalar(sa.text("SELECT name FROM t")) == THREAD_NAME


async def test_many_concurrent_readers_and_writers_share_the_pool_without_waiting_on_it(
    tmp_path: Path,
) -> None:
    """More tasks than pooled connections: they queue for a checkout (on either backend) and
    every write lands."""
    database = Database(f"sqlite:///{tmp_path}/p.db", pool_size=3)
    async with database.transaction() as conn:
        await conn.execute(sa.text("CREATE TABLE n (v INTEGER)"))

    async def write(value: int) -> None:
        async with database.transaction() as conn:
            await conn.execute(sa.text("INSERT INTO n (v) VALUES (:v)"), {"v": value})

    async def read() -> None:
        async with database.connect() as conn:
            await conn.scalar(sa.text("SELECT count(*) FROM n"))
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        for value in range(30):
            tg.start_soon(write, value)
            tg.start_soon(read)
    async with database.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM n")) == 30
    await database.dispose()


async def test_a_file_system_without_write_ahead_logging_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    """SQLite's dot-file locking has no shared memory, as on some network file systems."""
    database = Database(f"sqlite:///file:{tmp_path}/nowal.db?vfs=unix-dotfile&uri=true")
    with pytest.raises(WALUnavailable) as raised:
        async with database.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    await database.dispose()
    message = str(raised.value)
    assert isinstance(raised.value, ConfigurationError)
    assert "\n" not in message
    assert "nowal.db" in message and "write-ahead logging" in message
