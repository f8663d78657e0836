"""How fast one ``chitram worker`` drains a queue of thumbnail jobs, against the one-core ceiling.

Method
------
1. A fresh PostgreSQL database (created on the server at ``--postgres``, dropped at the end) and
   a shared object store (a local directory, ``file://``) are the only things the two "machines"
   share. ``--jobs`` distinct photo-like JPEGs (``--size``, default 1280x960: smooth gradients
   plus Gaussian noise, quality 88, one unique patch each) are uploaded through the SDK in this
   process with ``thumbnail_at_upload=False`` and ``run_jobs=False``: each upload records its
   pending thumbnail and its ``thumbnail`` job in its own transaction, as an API process beside
   workers does.
2. The one-core ceiling, in this process: the same thumbnail work in a loop, one image after
   another: read the original from the shared store, ``render_thumbnail`` (draft mode, the
   default 300 px JPEG q85, as the engine runs it), write the thumbnail to the store. No queue,
   no database, no engine hop. It runs twice, before and after the drain, and the mean rate of
   the two is the ceiling (the machine's load drifts).
3. The drain: one ``chitram worker`` subprocess with its own data dir and its own ``TMPDIR``,
   sharing only ``CHITRAM_DATABASE_URL`` and ``CHITRAM_STORAGE_URL``, with one image-engine
   process (``CHITRAM_IMAGE_WORKERS=1``: its image work gets one core, like the ceiling) and
   the default two thumbnail jobs at once (``CHITRAM_THUMBNAIL_WORKERS=2``: one job's claim and
   settling overlap the other's render). The clock starts when the worker logs that it started
   and stops when the last ``thumbnail`` job row is gone; every thumbnail row must then be
   ``ready``.
4. The figure: the worker's jobs/s divided by the ceiling's (goal: at least 0.9).

Run: ``python benchmarks/worker_drain.py [--jobs 1000] [--size 1280x960] [--postgres URL]``
(needs a PostgreSQL that ``--postgres`` may create databases on; default
``CHITRAM_TEST_POSTGRES_URL`` or ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
from PIL import Image as PILImage

from chitram_core import Chitram, Settings
from chitram_core.images.thumbnails import ThumbnailParams, render_thumbnail
from chitram_core.storage import blob_key


def photos(count: int, width: int, height: int) -> list[bytes]:
    """``count`` distinct photo-like JPEGs: one noisy gradient, a unique patch in each."""
    gradient = PILImage.linear_gradient("L").resize((width, height))
    bands = [
        gradient,
        gradient.rotate(90).resize((width, height)),
        PILImage.radial_gradient("L").resize((width, height)),
    ]
    noise = PILImage.effect_noise((width, height), 24)
    base = PILImage.merge("RGB", [PILImage.blend(band, noise, 0.1) for band in bands])
    rng = random.Random(7)
    out: list[bytes] = []
    for i in range(count):
        image = base.copy()
        x, y = rng.randrange(width - 16), rng.randrange(height - 16)
        image.paste((i % 256, (i // 256) % 256, 77), (x, y, x + 16, y + 16))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=88)
        out.append(buffer.getvalue())
    return out


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def ceiling(chitram: Chitram, shas: list[str], run: str) -> float:
    """Thumbnails per second of the same work in a loop in this process (one core)."""
    storage = chitram.storage
    params = ThumbnailParams()
    max_pixels = chitram.settings.max_pixels
    started = time.perf_counter()
    for sha in shas:
        data = b"".join([chunk async for chunk in storage.read(blob_key(sha))])
        rendered = render_thumbnail(data, params, max_pixels=max_pixels)
        await storage.write(f"ceiling/{run}/{sha}", one(rendered.data))
    return len(shas) / (time.perf_counter() - started)


async def count_jobs(pg: str | asyncpg.Connection) -> int:
    if not isinstance(pg, str):
        return int(await pg.fetchval("SELECT count(*) FROM jobs WHERE kind = 'thumbnail'"))
    conn = await asyncpg.connect(pg)
    try:
        return await count_jobs(conn)
    finally:
        await conn.close()


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "chitram_falcon", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def log_text(log_path: Path) -> str:
    return log_path.read_text(errors="replace")


async def drain(env: dict[str, str], pg: str, log_path: Path, total: int) -> dict[str, Any]:
    worker = start_worker(env, log_path)
    try:
        deadline = time.monotonic() + 120
        while "worker started" not in await anyio.to_thread.run_sync(log_text, log_path):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log_text(log_path)}")
            await anyio.sleep(0.02)
        # One connection for the polls: a new one each time is a new PostgreSQL backend
        # process, CPU the worker would compete for.
        conn = await asyncpg.connect(pg)
        try:
            started = time.perf_counter()
            left = total
            deadline = time.monotonic() + 3600
            while left and time.monotonic() < deadline:
                await anyio.sleep(0.1)
                left = await count_jobs(conn)
            elapsed = time.perf_counter() - started
        finally:
            await conn.close()
    finally:
        worker.terminate()
        worker.wait(60)
    if left:
        raise RuntimeError(f"{left} thumbnail jobs left after an hour")
    return {"seconds": round(elapsed, 2), "jobs_per_s": round(total / elapsed, 1)}


async def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    width, height = (int(n) for n in args.size.lower().split("x"))
    admin = args.postgres.replace("postgresql+asyncpg://", "postgresql://")
    name = f"chitram_drain_{uuid.uuid4().hex[:10]}"
    url = args.postgres.rsplit("/", 1)[0] + "/" + name
    pg = url.replace("postgresql+asyncpg://", "postgresql://")
    store = (tmp / "store").resolve()
    store.mkdir()
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        migrated = await anyio.run_process(
            [sys.executable, "-m", "chitram_falcon", "db", "upgrade"],
            env={**os.environ, "CHITRAM_DATABASE_URL": url, "CHITRAM_DATA_DIR": str(tmp)},
            check=False,
        )
        if migrated.returncode != 0:
            raise RuntimeError(f"chitram db upgrade failed:\n{migrated.stderr.decode()}")
        settings = Settings(
            data_dir=tmp / "producer",
            database_url=url,
            storage_url=store.as_uri(),
            thumbnail_at_upload=False,
            run_jobs=False,
            upload_rate_limit=None,
            auth_rate_limit=None,
            web_ui=False,
        )
        print(f"making {args.jobs} {args.size} JPEGs ...", file=sys.stderr)
        images = photos(args.jobs, width, height)
        async with Chitram(settings, background=False) as chitram:
            print("uploading (each records a thumbnail job) ...", file=sys.stderr)
            shas = [(await chitram.images.upload(data)).sha256 for data in images]
            assert len(set(shas)) == args.jobs
            assert await count_jobs(pg) == args.jobs
            print("ceiling, before ...", file=sys.stderr)
            before = await ceiling(chitram, shas, "before")
            worker_data, worker_tmp = tmp / "worker", tmp / "worker-tmp"
            worker_data.mkdir()
            worker_tmp.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
            env.update(
                {
                    "CHITRAM_DATA_DIR": str(worker_data),
                    "TMPDIR": str(worker_tmp),
                    "CHITRAM_DATABASE_URL": url,
                    "CHITRAM_STORAGE_URL": store.as_uri(),
                    "CHITRAM_IMAGE_WORKERS": "1",
                    "CHITRAM_THUMBNAIL_WORKERS": str(args.thumbnail_workers),
                    "CHITRAM_LOG_LEVEL": "INFO",
                }
            )
            print("draining with one chitram worker ...", file=sys.stderr)
            drained = await drain(env, pg, tmp / "worker.log", args.jobs)
            print("ceiling, after ...", file=sys.stderr)
            after = await ceiling(chitram, shas, "after")
        conn = await asyncpg.connect(pg)
        try:
            ready = await conn.fetchval("SELECT count(*) FROM thumbnails WHERE status = 'ready'")
        finally:
            await conn.close()
        if ready != args.jobs:
            raise RuntimeError(f"{ready} of {args.jobs} thumbnails ready")
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    roof = (before + after) / 2
    return {
        "jobs": args.jobs,
        "size": args.size,
        "source_bytes_mean": sum(map(len, images)) // len(images),
        "ceiling_jobs_per_s": {"before": round(before, 1), "after": round(after, 1)},
        "ceiling_mean_jobs_per_s": round(roof, 1),
        "worker": drained,
        "thumbnail_workers": args.thumbnail_workers,
        "ratio": round(drained["jobs_per_s"] / roof, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--size", default="1280x960")
    parser.add_argument("--thumbnail-workers", type=int, default=2)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "CHITRAM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chitram-drain-") as tmp:
        result = anyio.run(bench, args, Path(tmp))
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
