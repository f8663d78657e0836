"""Tag search, popular tags and filtered listing at a million images: query plans and timings.

Generates N images (default 1,000,000) spread over ``--owners`` users, 10,000 tag names and
three tags per image (one of 50 very common tags, one of 950 middling ones, one of 9,000 rare
ones), in a fresh SQLite file or a fresh PostgreSQL database, migrated by our own migrations.
Then it runs the SDK's real calls (``tags.popular``, ``tags.search``, ``images.list(tags=,
query=)``, ``tags.for_image``), captures the SQL each one sends, and prints that SQL's plan
(``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL) with the call's
median time over 5 runs. The baseline in the same run is v1's way of counting popular tags
(``GROUP BY`` over ``image_tags``), against our trigger-kept ``tags.image_count``.

    python benchmarks/tags_explain.py --database sqlite
    python benchmarks/tags_explain.py --database postgres   # CHITRAM_TEST_POSTGRES_URL's server

Timings on a shared machine are noisy; the plans are the point (index use, no full scans).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from chitram_core import Chitram, Settings
from chitram_core.db.database import upgrade_sync
from chitram_core.models import Principal

PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SHA = "0" * 64
EPOCH = datetime(2026, 1, 1)  # naive UTC, as the UTCDateTime columns store it
WORDS = [
    *("beach", "sun", "cat", "dog", "tree", "city", "night", "snow", "lake", "road", "car"),
    *("bird", "flower", "food", "party", "mountain", "river", "sky", "cloud", "street"),
    *("house", "garden", "forest", "desert", "bridge"),
]


def tag_names(count: int) -> list[str]:
    rng = random.Random(7)
    names: set[str] = set()
    while len(names) < count:
        names.add(f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{rng.randrange(1000)}")
    return sorted(names)


async def generate(url: str, images: int, owners: int, tags: list[str]) -> None:
    """Bulk SQL on an engine of its own: the instance's PostgreSQL pool has a 30 s statement
    timeout, and a million-row INSERT ... SELECT takes longer on a loaded machine."""
    engine = create_async_engine(url)
    sqlite = url.startswith("sqlite")
    async with engine.begin() as conn:
        for o in range(owners):
            await conn.execute(
                text(
                    "INSERT INTO users (id, email, email_normalized, provider, is_active,"
                    " created_at) VALUES (:id, :e, :e, 'local', true, :t)"
                ),
                {"id": f"user-{o}", "e": f"user{o}@example.com", "t": EPOCH},
            )
        await conn.execute(
            text(
                "INSERT INTO blobs (sha256, storage_key, size, content_type, width, height,"
                " refcount, created_at) VALUES (:s, 'blobs/x', 1, 'image/jpeg', 1, 1, :n, :t)"
            ),
            {"s": SHA, "n": images, "t": EPOCH},
        )
        for start in range(0, len(tags), 1000):
            await conn.execute(
                text(
                    "INSERT INTO tags (id, name, category, image_count, created_at)"
                    " VALUES (:id, :name, NULL, 0, :t)"
                ),
                [
                    {"id": f"t{i:08d}", "name": name, "t": EPOCH}
                    for i, name in enumerate(tags[start : start + 1000], start)
                ],
            )
        if sqlite:
            triggers = [
                row[0]
                for row in await conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE type='trigger'")
                )
            ]
            for name in ("image_tags_count_insert", "image_tags_count_delete"):
                await conn.execute(text(f"DROP TRIGGER {name}"))
            await conn.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :m)"
                    " INSERT INTO images (id, owner_id, filename, sha256, created_at)"
                    " SELECT printf('%08x-0000-4000-8000-%012x', i, i), 'user-' || (i % :o),"
                    " 'img-' || i || '.jpg', :s,"
                    " strftime('%Y-%m-%d %H:%M:%f', '2026-01-01', '+' || i || ' seconds') FROM n"
                ),
                {"m": images - 1, "o": owners, "s": SHA},
            )
            for offset, span, mult in ((0, 50, 1), (50, 950, 7919), (1000, 9000, 104729)):
                await conn.execute(
                    text(
                        "INSERT INTO image_tags (image_id, tag_id, source, confidence, created_at)"
                        " SELECT id, printf('t%08d', :off + ((rowid * :mul) % :span)), 'ai', 90,"
                        " created_at FROM images"
                    ),
                    {"off": offset, "mul": mult, "span": span},
                )
            for sql in triggers:
                await conn.execute(text(sql))
        else:
            await conn.execute(text("ALTER TABLE image_tags DISABLE TRIGGER image_tags_count"))
            await conn.execute(
                text(
                    "INSERT INTO images (id, owner_id, filename, sha256, created_at)"
                    " SELECT lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12,"
                    " '0'), 'user-' || (i % :o), 'img-' || i || '.jpg', :s,"
                    " timestamp '2026-01-01' + i * interval '1 second'"
                    " FROM generate_series(0, :m) AS i"
                ),
                {"m": images - 1, "o": owners, "s": SHA},
            )
            for offset, span, mult in ((0, 50, 1), (50, 950, 7919), (1000, 9000, 104729)):
                await conn.execute(
                    text(
                        "INSERT INTO image_tags (image_id, tag_id, source, confidence, created_at)"
                        " SELECT id, 't' || lpad((:off + ((('x' || substr(id, 1, 8))::bit(32)"
                        "::bigint * :mul) % :span))::text, 8, '0'), 'ai', 90, created_at"
                        " FROM images"
                    ),
                    {"off": offset, "mul": mult, "span": span},
                )
            await conn.execute(text("ALTER TABLE image_tags ENABLE TRIGGER image_tags_count"))
        await conn.execute(
            text(
                "UPDATE tags SET image_count ="
                " (SELECT count(*) FROM image_tags WHERE image_tags.tag_id = tags.id)"
            )
        )
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    await engine.dispose()


async def measure(chitram: Chitram, label: str, call: Any, captured: list[Any]) -> None:
    captured.clear()
    await call()
    statements = list(captured)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    print(f"\n### {label}: median {statistics.median(times):.2f} ms (5 runs)")
    for statement, params in statements:
        print("SQL:", " ".join(statement.split()))
        prefix = (
            "EXPLAIN QUERY PLAN " if chitram.database.is_sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
        )
        async with chitram.database.engine.connect() as conn:
            rows = await conn.exec_driver_sql(prefix + statement, params)
            for row in rows:
                print("   ", row[-1] if chitram.database.is_sqlite else row[0])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--owners", type=int, default=100)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="chitram-tags-bench-"))
    drop: str | None = None
    if args.database == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir}/bench.db"
    else:
        import asyncpg

        name = f"chitram_bench_{uuid.uuid4().hex[:10]}"
        admin = PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(admin)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        drop = name
    try:
        await asyncio.to_thread(upgrade_sync, url)
        settings = Settings(
            data_dir=workdir,
            database_url=url,
            storage_url=f"memory://bench-{uuid.uuid4().hex}",
            cache_url="off",
            auto_migrate=False,
        )
        async with Chitram(settings, background=False) as chitram:
            started = time.perf_counter()
            names = tag_names(10_000)
            await generate(url, args.images, args.owners, names)
            took = time.perf_counter() - started
            print(
                f"# {args.database}: {args.images:,} images, {args.owners} owners,"
                f" {3 * args.images:,} image tags, generated in {took:.0f} s"
            )
            captured: list[Any] = []

            @event.listens_for(chitram.database.engine.sync_engine, "before_cursor_execute")
            def capture(conn: Any, cursor: Any, statement: str, params: Any, *a: Any) -> None:
                if not statement.lstrip().upper().startswith("EXPLAIN"):
                    captured.append((statement, params))

            owner = Principal(user_id="user-0", email="user0@example.com")
            async with chitram.database.connect() as conn:

                async def owners_tag(where: str) -> str:
                    return str(
                        (
                            await conn.execute(
                                text(
                                    "SELECT t.name FROM tags t JOIN image_tags it"
                                    " ON it.tag_id = t.id JOIN images i ON i.id = it.image_id"
                                    f" WHERE i.owner_id = 'user-0' AND {where} LIMIT 1"
                                )
                            )
                        ).scalar_one()
                    )

                common = await owners_tag("t.id < 't00000050'")  # on every image of the owner
                rare = await owners_tag("t.id >= 't00001000'")  # on a handful of them
                absent = str(  # used by 20,000 images, none of them the owner's
                    (
                        await conn.execute(
                            text(
                                "SELECT name FROM tags WHERE id < 't00000050' AND id NOT IN"
                                " (SELECT it.tag_id FROM image_tags it JOIN images i"
                                " ON i.id = it.image_id WHERE i.owner_id = 'user-0'"
                                " AND it.tag_id < 't00000050') ORDER BY id LIMIT 1"
                            )
                        )
                    ).scalar_one()
                )
            first_image = "00000000-0000-4000-8000-000000000000"

            async def baseline() -> None:
                async with chitram.database.connect() as conn:
                    await conn.execute(
                        text(
                            "SELECT t.name, t.category, count(*) AS n FROM image_tags it"
                            " JOIN tags t ON t.id = it.tag_id GROUP BY t.id, t.name, t.category"
                            " ORDER BY n DESC, t.name LIMIT 20"
                        )
                    )

            cases = [
                ("baseline: popular by GROUP BY (v1)", baseline),
                ("tags.popular(20)", lambda: chitram.tags.popular(20)),
                ("tags.search('be', 10)", lambda: chitram.tags.search("be", 10)),
                ("tags.all(20)", lambda: chitram.tags.all(20)),
                ("tags.for_image", lambda: chitram.tags.for_image(first_image)),
                (
                    f"images.list(tags=[{common!r}]) (on all the owner's images)",
                    lambda: chitram.images.list(owner, tags=[common]),
                ),
                (
                    f"images.list(tags=[{rare!r}]) (on a few of them)",
                    lambda: chitram.images.list(owner, tags=[rare]),
                ),
                (
                    f"images.list(tags=[{absent!r}]) (popular, but not the owner's)",
                    lambda: chitram.images.list(owner, tags=[absent]),
                ),
                (
                    f"images.list(tags=[{common!r}, {rare!r}])",
                    lambda: chitram.images.list(owner, tags=[common, rare]),
                ),
                ("images.list(query='img-12')", lambda: chitram.images.list(owner, query="img-12")),
                (
                    "images.list(query='zzz') (no match)",
                    lambda: chitram.images.list(owner, query="zzz"),
                ),
            ]
            for label, call in cases:
                await measure(chitram, label, call, captured)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the SQLite file is about 1 GB
        if drop is not None:
            import asyncpg

            conn = await asyncpg.connect(PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://"))
            await conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
