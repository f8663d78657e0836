"""CPU per SQLite statement through SQLAlchemy's async layer: our driver against a baseline.

Method
------
* One SQLite file per driver in a temporary directory, a two-column table, WAL on; the engines
  are made with ``create_async_engine`` on the URL ``Database`` uses (``chitram_url``), on the
  asyncio loop (uvloop with ``--uvloop``, trio with ``--trio``).
* The drivers: ``chitram`` (this tree's ``chitram_core/db/sqlite_driver.py``), ``baseline``
  (the same file from the tree given with ``--baseline``, loaded under another driver name;
  e.g. ``git worktree add /tmp/base <commit>``), and ``aiosqlite`` when it is installed.
* For each driver, on one connection: 2,000 one-row ``INSERT``\\ s (the driver module's
  implicit transaction, then one commit), 2,000 point ``SELECT``\\ s fetched whole; then 500
  times connect, one ``SELECT``, close (the pool's checkout and reset included); then 2,000
  ``INSERT``\\ s inside one ``BEGIN IMMEDIATE`` transaction, as ``Database.transaction()``
  opens it.
* The figure is the process's CPU time (user + system, all threads) per statement, so thread
  wake-ups count. Run it on a quiet machine and repeat it (``--rounds``): the figures printed are
  the medians. The machine's speed moves by +-20%.

Run:  python benchmarks/sqlite_driver.py [--uvloop | --trio] [--baseline TREE] [--rounds N]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import event, text
from sqlalchemy.dialects import registry
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chitram_core.db.sqlite_driver import chitram_url

STATEMENTS = 2000
CONNECTS = 500


def load_baseline(tree: Path) -> None:
    """The baseline tree's driver module, registered as ``sqlite+baseline``."""
    path = tree / "chitram_core" / "db" / "sqlite_driver.py"
    spec = importlib.util.spec_from_file_location("baseline_sqlite_driver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    registry.register("sqlite.baseline", spec.name, "SQLiteDialectChitram")


def make_engine(directory: Path, driver: str) -> AsyncEngine:
    path = f"{directory}/{driver}.db"
    if driver == "chitram":
        url: Any = chitram_url(f"sqlite:///{path}")
    else:
        url = f"sqlite+{driver}:///{path}"
    engine = create_async_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


async def measure(directory: Path, driver: str) -> dict[str, float]:
    engine = make_engine(directory, driver)
    figures: dict[str, float] = {}
    conn = await engine.connect()
    try:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY, b TEXT)"))
        await conn.commit()
        for _ in range(50):
            await conn.execute(text("SELECT 1"))
        await conn.commit()
        started = time.process_time()
        for _ in range(STATEMENTS):
            await conn.execute(text("INSERT INTO t (b) VALUES (:b)"), {"b": "x"})
        figures["insert"] = (time.process_time() - started) / STATEMENTS
        await conn.commit()
        started = time.process_time()
        for n in range(STATEMENTS):
            (await conn.execute(text("SELECT * FROM t WHERE a = :a"), {"a": n + 1})).all()
        figures["select"] = (time.process_time() - started) / STATEMENTS
        await conn.rollback()
    finally:
        await conn.close()
    started = time.process_time()
    for n in range(CONNECTS):
        conn = await engine.connect()
        try:
            (await conn.execute(text("SELECT * FROM t WHERE a = :a"), {"a": n + 1})).all()
        finally:
            await conn.close()
    figures["connect + select + close"] = (time.process_time() - started) / CONNECTS
    conn = await (await engine.connect()).execution_options(write=True)
    try:
        started = time.process_time()
        await conn.begin()
        for _ in range(STATEMENTS):
            await conn.execute(text("INSERT INTO t (b) VALUES (:b)"), {"b": "y"})
        await conn.commit()
        figures["insert in a write transaction"] = (time.process_time() - started) / STATEMENTS
    finally:
        await conn.close()
    await engine.dispose()
    return figures


async def main(drivers: list[str], rounds: int, loop: str) -> None:
    runs: dict[str, list[dict[str, float]]] = {driver: [] for driver in drivers}
    with tempfile.TemporaryDirectory(prefix="chitram-sqlite-") as name:
        for n in range(rounds):
            for driver in drivers:  # interleaved, so drift in the machine's speed hits all
                directory = Path(name) / f"{driver}-{n}"
                directory.mkdir()
                runs[driver].append(await measure(directory, driver))
    print(f"CPU per statement (µs), {loop}, median of {rounds}:")
    header = "".join(f"{driver:>12}" for driver in drivers)
    print(f"  {'':32}{header}")
    for what in runs[drivers[0]][0]:
        cells = "".join(
            f"{statistics.median(r[what] for r in runs[driver]) * 1e6:12.0f}" for driver in drivers
        )
        print(f"  {what:32}{cells}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--uvloop", action="store_true")
    group.add_argument("--trio", action="store_true")
    parser.add_argument("--baseline", type=Path, default=None, help="a source tree to compare")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    drivers = ["chitram"]
    if args.baseline is not None:
        load_baseline(args.baseline)
        drivers.append("baseline")
    if importlib.util.find_spec("aiosqlite") is not None and not args.trio:
        drivers.append("aiosqlite")
    if args.trio:
        anyio.run(main, drivers, args.rounds, "trio", backend="trio")
    else:
        loop = "uvloop" if args.uvloop else "asyncio"
        anyio.run(main, drivers, args.rounds, loop, backend_options={"use_uvloop": args.uvloop})
