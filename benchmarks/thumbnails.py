"""Thumbnail speed: JPEG draft mode (shrink on load) against a full decode, and throughput.

Method
------
1. Make 12-megapixel (4000x3000) photo-like JPEGs in a temporary directory: smooth colour
   gradients plus per-pixel Gaussian noise, saved at quality 90 with 4:2:0 subsampling, like a
   phone camera. Three noise levels give three entropy densities (``--detail``): ``high``
   (~3.3 MB, grainy, like a phone photo of foliage at night), ``medium`` (~1.5 MB) and
   ``low`` (~0.8 MB, sky and walls). This matters: draft mode skips the IDCT, colour
   conversion and resampling of 63/64 of the pixels, but every Huffman symbol must still be
   decoded, so the speed-up shrinks as the file gets denser.
2. For each source, render the default thumbnail (300 px box, JPEG q85) ``--repeat`` times
   each way, in the same process, alternating the two ways so drift affects both equally:
   - *draft*: ``render_thumbnail(...)`` as the service calls it (libjpeg's DCT scaling
     decodes straight to 1/8 scale, then ``thumbnail()`` with ``reducing_gap``);
   - *full*: ``render_thumbnail(..., draft=False)``, which decodes all 12 MP first.
   Each render reads the file from disk. The median wall time of each is reported, and the
   ratio full/draft (target: at least 4x).
3. Throughput (each source): ``--jobs`` renders (draft mode) through
   ``render_thumbnail_async`` in an ``InlineEngine`` limited to two worker threads (as
   ``CHITRAM_THUMBNAIL_WORKERS=2``); the figure is jobs / total wall time. Pillow releases
   the GIL while decoding, so two threads can use two cores.

Run: ``python benchmarks/thumbnails.py [--repeat 7] [--jobs 40]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import anyio
from PIL import Image

from chitram_core.engine import InlineEngine, render_thumbnail_async
from chitram_core.images.thumbnails import ThumbnailParams, render_thumbnail

WIDTH, HEIGHT = 4000, 3000
MAX_PIXELS = 40_000_000
NOISE = {"high": 0.25, "medium": 0.10, "low": 0.05}


def make_photo(path: Path, noise_amount: float) -> None:
    """A 4000x3000 gradient with noise, saved like a camera JPEG."""
    gradient = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    red = gradient
    green = gradient.rotate(90).resize((WIDTH, HEIGHT))
    blue = Image.radial_gradient("L").resize((WIDTH, HEIGHT))
    noise = Image.effect_noise((WIDTH, HEIGHT), 24)
    bands = [Image.blend(band, noise, noise_amount) for band in (red, green, blue)]
    Image.merge("RGB", bands).save(path, "JPEG", quality=90, subsampling=2)


def time_render(path: Path, params: ThumbnailParams, *, draft: bool) -> float:
    started = time.perf_counter()
    with path.open("rb") as fileobj:
        render_thumbnail(fileobj, params, max_pixels=MAX_PIXELS, draft=draft)
    return time.perf_counter() - started


async def throughput(data: bytes, params: ThumbnailParams, jobs: int, workers: int) -> float:
    engine = InlineEngine(
        decode_timeout=60, wait_timeout=3600, limiter=anyio.CapacityLimiter(workers)
    )
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(jobs):
            tg.start_soon(_one, data, params, engine)
    return jobs / (time.perf_counter() - started)


async def _one(data: bytes, params: ThumbnailParams, engine: InlineEngine) -> None:
    await render_thumbnail_async(data, params, engine=engine, max_pixels=MAX_PIXELS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--detail", nargs="*", choices=list(NOISE), default=list(NOISE))
    args = parser.parse_args()
    params = ThumbnailParams()
    print(f"cpus: {os.cpu_count()}; thumbnail {params.size} px {params.format} q{params.quality}")
    with tempfile.TemporaryDirectory() as tmp:
        for detail in args.detail:
            path = Path(tmp) / f"photo-12mp-{detail}.jpg"
            make_photo(path, NOISE[detail])
            measure(path, detail, params, args)


def measure(path: Path, detail: str, params: ThumbnailParams, args: argparse.Namespace) -> None:
    size = path.stat().st_size
    print(f"\nsource ({detail} detail): {WIDTH}x{HEIGHT} JPEG q90 4:2:0, {size / 1e6:.1f} MB")
    time_render(path, params, draft=True)  # warm-up: imports, page cache
    drafts, fulls = [], []
    for _ in range(args.repeat):
        drafts.append(time_render(path, params, draft=True))
        fulls.append(time_render(path, params, draft=False))
    draft_ms = statistics.median(drafts) * 1000
    full_ms = statistics.median(fulls) * 1000
    print(f"  draft (shrink on load): median {draft_ms:6.1f} ms over {args.repeat} runs")
    print(f"  full decode:            median {full_ms:6.1f} ms over {args.repeat} runs")
    print(f"  speed-up: {full_ms / draft_ms:.1f}x (target >= 4x)")
    rate = anyio.run(throughput, path.read_bytes(), params, args.jobs, args.workers)
    print(f"  throughput: {rate:.1f} thumbnails/s with {args.workers} worker threads")


if __name__ == "__main__":
    main()
