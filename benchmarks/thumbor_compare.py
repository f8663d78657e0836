"""Variants: render throughput per format, chitram's engine against a running Thumbor.

Method
------
1. The same source as ``benchmarks/variants.py``: its ``make_photo()`` 12-megapixel
   (4000x3000) photo-like JPEG (~1.5 MB), written once to a temporary directory.
2. Thumbor is started as a subprocess from its own virtualenv (``--thumbor``: the path of its
   ``thumbor`` executable; this script never imports thumbor) on ``127.0.0.1:<free port>``
   with ``--processes 2`` (as many as the engine's workers) and a generated config: the file
   loader rooted at that temporary directory, ``STORAGE = no_storage`` (the source is read
   from the file every time), ``RESULT_STORAGE = None`` (every request really renders),
   ``ALLOW_UNSAFE_URL``, and encoder settings equal to chitram's defaults (JPEG q85 optimised
   progressive, WebP q80, AVIF q60 speed 8, PNG level 6; Thumbor's default PIL engine also
   uses JPEG ``draft()`` and a Lanczos resize, so both do the same kind of work).
   It is stopped at the end (SIGTERM to its process group, SIGKILL after 10 s), also on error
   and on SIGINT/SIGTERM to this script.
3. For each output format both support (jpeg, webp, png, and avif when Thumbor answers
   ``format(avif)`` with ``image/avif``), the resize to 1280 px wide (1280x960):
   - *sequential*: after a warm-up (one render each way, then a batch of 2 per format through
     the engine and of ``--processes`` simultaneous requests to Thumbor), ``--repeat``
     renders each way, alternating so that drift affects both equally: chitram's
     ``render_variant(data, parse_spec("w1280-<fmt>"))`` in this process (the function
     ``benchmarks/variants.py`` times) and
     ``GET /unsafe/1280x0/filters:format(<fmt>)/photo.jpg`` to Thumbor (includes the loopback
     HTTP round trip and Thumbor's file read; the cost of a bare ``/healthcheck`` round trip
     is printed for scale). Every answer is checked: 200, 1280x960, the requested format.
   - *concurrent*: a batch of ``--batch`` renders of that spec at once, each way: through an
     ``ImageEngine`` as the app builds it here (2 worker processes, 512 MiB budget, each job
     reserving what ``chitram_core.variants`` computes for it: ~173 MiB, which is above the
     engine's ``RETIRE_ABOVE``, so the app replaces the worker after each such render) and as
     ``--batch`` simultaneous requests to Thumbor (2 processes); renders/s = batch / wall time.
     A diagnostic third column runs the same engine with workers never retired ("kept"), to
     show what the per-render worker replacement costs.
   This is repeated ``--rounds`` times; the figures are medians over all rounds.
4. Reported per format: median ms per render each way, renders/s (1 / median sequentially,
   batch / wall concurrently), the ratio (Thumbor ms / chitram ms sequentially, chitram/s /
   Thumbor/s concurrently: > 1 means chitram is faster either way) and both outputs' sizes.

Nothing is pinned with ``taskset`` (the other benchmarks do not pin either): both sides share
the same 2 cores, which other developers load at the same time; absolute times are noisy,
the ratios within one run are the figures to read.

Run: ``python benchmarks/thumbor_compare.py --thumbor /tmp/thumbor-venv/bin/thumbor
[--repeat 5] [--batch 8] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
from _common import free_port, wait_for
from anyio.from_thread import start_blocking_portal
from PIL import Image
from variants import MAX_PIXELS, make_photo

from chitram_core import Settings
from chitram_core.engine import ImageEngine
from chitram_core.engine.pool import RETIRE_ABOVE
from chitram_core.engine.work import variant_cost, variant_image
from chitram_core.images.formats import HEAD_BYTES, count_jpeg_scans, probe
from chitram_core.images.variants import (
    avif_available,
    parse_spec,
    render_variant,
    variant_cost_side,
)

CONFIG = """
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
ENGINE = 'thumbor.engines.pil'
QUALITY = 85
PROGRESSIVE_JPEG = True
WEBP_QUALITY = 80
AVIF_QUALITY = 60
AVIF_SPEED = 8
PNG_COMPRESSION_LEVEL = 6
RESPECT_ORIENTATION = True
MAX_AGE = 0
"""

MIME = {"jpeg": "image/jpeg", "webp": "image/webp", "png": "image/png", "avif": "image/avif"}
PIL_NAME = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "avif": "AVIF"}


def start_thumbor(exe: str, root: Path, processes: int) -> tuple[subprocess.Popen[bytes], str]:
    conf = root.parent / "thumbor.conf"
    conf.write_text(CONFIG.format(root=str(root)))
    port = free_port()
    command = [exe, "--port", str(port), "--ip", "127.0.0.1", "-c", str(conf)]
    command += ["--processes", str(processes), "-l", "error"]
    proc = subprocess.Popen(
        command,
        start_new_session=True,  # its own process group: the forked workers stop with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthcheck", proc, timeout=60)
    except BaseException:
        stop_thumbor(proc)
        raise
    return proc, base


def stop_thumbor(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def thumbor_version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    return (out.stdout or out.stderr).strip()


def thumbor_get(client: httpx.Client, fmt: str) -> bytes:
    resp = client.get(f"/unsafe/1280x0/filters:format({fmt})/photo.jpg")
    resp.raise_for_status()
    return resp.content


def check(body: bytes, fmt: str) -> None:
    with Image.open(io.BytesIO(body)) as img:
        assert img.format == PIL_NAME[fmt], (img.format, fmt)
        assert img.size == (1280, 960), img.size


def thumbor_formats(client: httpx.Client) -> list[str]:
    formats = ["jpeg", "webp", "png"]
    if avif_available():
        resp = client.get("/unsafe/1280x0/filters:format(avif)/photo.jpg")
        if resp.status_code == 200 and resp.headers.get("content-type") == "image/avif":
            formats.append("avif")
        else:
            print(f"Thumbor gives no AVIF: {resp.status_code} {resp.headers.get('content-type')}")
    return formats


async def make_engine(retire_above: int) -> ImageEngine:
    """The app's engine on this machine: 2 workers, the default 512 MiB memory budget."""
    return ImageEngine(
        workers=2,
        memory_budget=Settings().image_memory_budget,
        decode_timeout=120,
        wait_timeout=120,
        retire_above=retire_above,
    )


def app_reservation(data: bytes) -> int:
    """The memory the app reserves for this render (``chitram_core.variants``' computation)."""
    info = probe(data[:HEAD_BYTES])
    progressive = count_jpeg_scans(data, Settings().jpeg_max_scans).progressive
    side = variant_cost_side(parse_spec("w1280-jpeg"), info.width, info.height)
    return variant_cost(info, file_size=len(data), progressive=progressive, side=side)


async def engine_batch(engine: ImageEngine, data: bytes, fmt: str, batch: int) -> float:
    spec = parse_spec(f"w1280-{fmt}")
    memory = app_reservation(data)
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(batch):
            tg.start_soon(
                lambda: engine.run(variant_image, data, spec, max_pixels=MAX_PIXELS, memory=memory)
            )
    return time.perf_counter() - started


def thumbor_batch(base: str, fmt: str, batch: int) -> float:
    with httpx.Client(base_url=base, timeout=120) as client, ThreadPoolExecutor(batch) as pool:
        started = time.perf_counter()
        bodies = list(pool.map(lambda _: thumbor_get(client, fmt), range(batch)))
        elapsed = time.perf_counter() - started
    check(bodies[0], fmt)
    return elapsed


def run(args: argparse.Namespace) -> None:
    data = make_photo()
    version = thumbor_version(args.thumbor)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        root.mkdir()
        (root / "photo.jpg").write_bytes(data)
        with contextlib.ExitStack() as stack:  # undone in reverse order, also on error
            proc, base = start_thumbor(args.thumbor, root, args.processes)
            stack.callback(stop_thumbor, proc)
            # the engines live in an event loop of their own thread; the timed loop is sync
            portal = stack.enter_context(start_blocking_portal())
            engine = portal.call(make_engine, RETIRE_ABOVE)
            stack.callback(portal.call, engine.aclose)
            kept = portal.call(make_engine, 1 << 62)  # diagnostic: workers never retired
            stack.callback(portal.call, kept.aclose)
            with httpx.Client(base_url=base, timeout=120) as client:
                formats = thumbor_formats(client)
                ours: dict[str, list[float]] = {f: [] for f in formats}
                theirs: dict[str, list[float]] = {f: [] for f in formats}
                sizes: dict[str, tuple[int, int]] = {}
                ours_batch: dict[str, list[float]] = {f: [] for f in formats}
                kept_batch: dict[str, list[float]] = {f: [] for f in formats}
                theirs_batch: dict[str, list[float]] = {f: [] for f in formats}
                ping: list[float] = []
                for fmt in formats:  # warm-up, and check what both produce
                    body = thumbor_get(client, fmt)
                    check(body, fmt)
                    out = render_variant(data, parse_spec(f"w1280-{fmt}"), max_pixels=MAX_PIXELS)
                    assert (out.width, out.height) == (1280, 960)
                    sizes[fmt] = (len(out.data), len(body))
                for fmt in formats:  # start the workers, warm every encoder on both sides
                    portal.call(engine_batch, engine, data, fmt, 2)
                    portal.call(engine_batch, kept, data, fmt, 2)
                    thumbor_batch(base, fmt, args.processes)
                for rnd in range(args.rounds):
                    load = os.getloadavg()[0]
                    print(f"round {rnd + 1}/{args.rounds} (load average {load:.1f})", flush=True)
                    for fmt in formats:
                        spec = parse_spec(f"w1280-{fmt}")
                        for _ in range(args.repeat):
                            t = time.perf_counter()
                            render_variant(data, spec, max_pixels=MAX_PIXELS)
                            ours[fmt].append(time.perf_counter() - t)
                            t = time.perf_counter()
                            thumbor_get(client, fmt)
                            theirs[fmt].append(time.perf_counter() - t)
                            t = time.perf_counter()
                            client.get("/healthcheck").raise_for_status()
                            ping.append(time.perf_counter() - t)
                        for eng, into in ((engine, ours_batch), (kept, kept_batch)):
                            into[fmt].append(portal.call(engine_batch, eng, data, fmt, args.batch))
                        theirs_batch[fmt].append(thumbor_batch(base, fmt, args.batch))

    n = args.repeat * args.rounds
    print(f"\nThumbor: {version} ({args.processes} processes, PIL engine, no result storage)")
    print(f"Source: benchmarks/variants.py make_photo(), 4000x3000 JPEG, {len(data) / 1e6:.2f} MB")
    print(f"Loopback /healthcheck round trip: median {statistics.median(ping) * 1e3:.2f} ms")
    print(f"\nSequential w1280, median of {n} ({args.rounds} rounds x {args.repeat})")
    print(
        f"{'format':<6} {'chitram ms':>11} {'thumbor ms':>11} {'thumbor/chitram':>16} "
        f"{'chitram/s':>10} {'thumbor/s':>10} {'bytes ours':>11} {'bytes thumbor':>14}"
    )
    for fmt in formats:
        a, b = statistics.median(ours[fmt]), statistics.median(theirs[fmt])
        print(
            f"{fmt:<6} {a * 1e3:>11.1f} {b * 1e3:>11.1f} {b / a:>15.2f}x "
            f"{1 / a:>10.2f} {1 / b:>10.2f} {sizes[fmt][0]:>11} {sizes[fmt][1]:>14}"
        )
    print(
        f"\nConcurrent batches of {args.batch} w1280 renders, median wall of {args.rounds} "
        f"(chitram: ImageEngine, 2 workers; Thumbor: {args.batch} simultaneous requests)"
    )
    print(f"Engine reservation per render: {app_reservation(data) / 2**20:.0f} MiB (as the app)")
    print(
        f"{'format':<6} {'chitram/s':>10} {'thumbor/s':>10} {'chitram/thumbor':>16} "
        f"{'kept/s':>8} {'kept/thumbor':>13}"
    )
    for fmt in formats:
        a = args.batch / statistics.median(ours_batch[fmt])
        b = args.batch / statistics.median(theirs_batch[fmt])
        c = args.batch / statistics.median(kept_batch[fmt])
        print(f"{fmt:<6} {a:>10.2f} {b:>10.2f} {a / b:>15.2f}x {c:>8.2f} {c / b:>12.2f}x")


def _interrupted(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--thumbor", required=True, help="path of the thumbor executable (its own venv)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    if min(args.repeat, args.batch, args.rounds, args.processes) < 1:
        parser.error("--repeat, --batch, --rounds and --processes must be >= 1")
    # SIGTERM (and SIGINT, also where a non-interactive shell ignores it) unwinds normally, so
    # the ExitStack stops Thumbor and the engines
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    run(args)


if __name__ == "__main__":
    main()
