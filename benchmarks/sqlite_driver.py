"""CPU per SQLite statement through SQLAlchemy's asyncio layer: aiosqlite against our driver.

Method
------
* One SQLite file per driver in a temporary directory, a two-column table; the engines are made
  with ``create_async_engine`` (for ours, the URL ``Database`` uses: ``chitram_url``), no
  pragmas, on the asyncio loop (uvloop with ``--uvloop``).
* For each driver, on one connection: 2,000 one-row ``INSERT``\\ s outside any write
  transaction (the driver module's implicit transaction, then one commit), 2,000 point
  ``SELECT``\\ s fetched whole; then 500 times connect, one ``SELECT``, close (the pool's
  checkout and reset included); then 2,000 ``INSERT``\\ s inside one ``Database.transaction()``
  (``BEGIN IMMEDIATE``: our driver runs these on the event loop).
* The figure is the process's CPU time (user + system, all threads) per statement, so thread
  wake-ups count. Run it on a quiet machine; repeat it (the machine's speed moves by +-20%).

Run:  python benchmarks/sqlite_driver.py [--uvloop]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chitram_core.db import Database
from chitram_core.db.sqlite_driver import chitram_url

STATEMENTS = 2000
CONNECTS = 500


async def measure(directory: Path, driver: str) -> dict[str, float]:
    url = f"sqlite+aiosqlite:///{directory}/{driver}.db"
    engine = create_async_engine(chitram_url(url) if driver == "chitram" else url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
    figures: dict[str, float] = {}
    async with engine.connect() as conn:
        for _ in range(50):
            await conn.execute(text("SELECT 1"))
        started = time.process_time()
        for _ in range(STATEMENTS):
            await conn.execute(text("INSERT INTO t (b) VALUES (:b)"), {"b": "x"})
        figures["insert"] = (time.process_time() - started) / STATEMENTS
        await conn.commit()
        started = time.process_time()
        for n in range(STATEMENTS):
            (await conn.execute(text("SELECT * FROM t WHERE a = :a"), {"a": n + 1})).all()
        figures["select"] = (time.process_time() - started) / STATEMENTS
    started = time.process_time()
    for n in range(CONNECTS):
        async with engine.connect() as conn:
            (await conn.execute(text("SELECT * FROM t WHERE a = :a"), {"a": n + 1})).all()
    figures["connect + select + close"] = (time.process_time() - started) / CONNECTS
    await engine.dispose()
    if driver == "chitram":
        database = Database(url)
        started = time.process_time()
        async with database.transaction() as conn:
            for _ in range(STATEMENTS):
                await conn.execute(text("INSERT INTO t (b) VALUES (:b)"), {"b": "y"})
        figures["insert in a write transaction"] = (time.process_time() - started) / STATEMENTS
        await database.dispose()
    return figures


async def main(use_uvloop: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="chitram-sqlite-") as name:
        results = {driver: await measure(Path(name), driver) for driver in ("aiosqlite", "chitram")}
    loop = "uvloop" if use_uvloop else "asyncio"
    print(f"CPU per statement (µs), {loop}:")
    for what in results["chitram"]:
        ours = results["chitram"][what] * 1e6
        theirs = results["aiosqlite"].get(what)
        before = f"{theirs * 1e6:8.0f}" if theirs is not None else "       -"
        print(f"  {what:32} aiosqlite {before}   chitram {ours:8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    anyio.run(main, args.uvloop, backend_options={"use_uvloop": args.uvloop})
