"""Variants: render throughput per format against naive Pillow, and cached first-byte latency.

Method
------
1. Make one 12-megapixel (4000x3000) photo-like JPEG (gradients plus Gaussian noise, quality
   90, 4:2:0; the ``medium`` detail of ``benchmarks/thumbnails.py``, ~1.5 MB).
2. Render throughput, per output format (jpeg, webp, avif, png) for the spec ``w1280``
   (1280x960), ``--repeat`` times each way in the same process, alternating the two ways so
   drift affects both equally; medians:
   - *chitram*: ``render_variant`` as the engine's job runs it (JPEG ``draft()`` to the
     smallest DCT scale still covering 1280 px, then ``reduce``/Lanczos, EXIF orientation,
     encode with chitram's defaults: JPEG q85 optimize progressive, WebP q80 method 4, AVIF
     q60 speed 8, PNG level 6);
   - *naive*: ``Image.open``, full ``load()``, ``resize((1280, 960), LANCZOS)``, ``save`` in
     the same format with the same encoder options: what a straightforward Pillow handler does.
   The ratio naive/chitram is reported; both encode identically, so the difference is the
   decode and resample.
3. Through the engine: ``--jobs`` renders of distinct ``w<N>`` JPEG specs via
   ``ImageEngine.run`` with 2 worker processes (the default on this 2-core machine), memory
   admission on; renders/s = jobs / wall time.
4. First byte: a Chitram on a temporary SQLite + file store, the Falcon app in process
   (httpx ``ASGITransport``, no sockets), the photo uploaded and its ``w640`` variant made
   once. Then ``--requests`` alternating GETs of ``/variants/w640`` (cached: a metadata lookup,
   a ``variants`` row read, a storage read) and of ``/file`` (the original); time from sending
   the request to the first body chunk; medians and p90.

The machine is shared by several developers working at the same time: absolute times are
noisy; the ratios within one run are the figures to read.

Run: ``python benchmarks/variants.py [--repeat 5] [--jobs 12] [--requests 200]``
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import anyio
import httpx
from PIL import Image

from chitram_core import Chitram, Settings
from chitram_core.engine import ImageEngine
from chitram_core.engine.work import variant_image
from chitram_core.images.variants import (
    _PILLOW,
    DEFAULT_QUALITY,
    avif_available,
    parse_spec,
    render_variant,
)
from chitram_falcon import create_app

WIDTH, HEIGHT = 4000, 3000
MAX_PIXELS = 40_000_000


def make_photo() -> bytes:
    gradient = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    green = gradient.rotate(90).resize((WIDTH, HEIGHT))
    blue = Image.radial_gradient("L").resize((WIDTH, HEIGHT))
    noise = Image.effect_noise((WIDTH, HEIGHT), 24)
    bands = [Image.blend(band, noise, 0.10) for band in (gradient, green, blue)]
    buf = io.BytesIO()
    Image.merge("RGB", bands).save(buf, "JPEG", quality=90, subsampling=2)
    return buf.getvalue()


def naive(data: bytes, fmt: str) -> bytes:
    """Full decode, one Lanczos resize, the same encoder options as chitram."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        small = img.resize((1280, 960), Image.Resampling.LANCZOS)
    options: dict[str, object] = {"quality": DEFAULT_QUALITY[fmt]}
    if fmt == "jpeg":
        options.update(optimize=True, progressive=True)
    elif fmt == "webp":
        options.update(method=4)
    elif fmt == "avif":
        options.update(speed=8)
    else:
        options = {"compress_level": 6}
    buf = io.BytesIO()
    small.save(buf, _PILLOW[fmt], **options)
    return buf.getvalue()


def render_formats(data: bytes, repeat: int) -> None:
    formats = ["jpeg", "webp", "png"] + (["avif"] if avif_available() else [])
    print(
        f"\nRender w1280 from {WIDTH}x{HEIGHT} JPEG ({len(data) / 1e6:.1f} MB), median of {repeat}"
    )
    print(f"{'format':<6} {'chitram ms':>11} {'naive ms':>9} {'speed-up':>9} {'chitram/s':>10}")
    for fmt in formats:
        spec = parse_spec(f"w1280-{fmt}")
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(repeat):
            t = time.perf_counter()
            out = render_variant(data, spec, max_pixels=MAX_PIXELS)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            naive(data, fmt)
            theirs.append(time.perf_counter() - t)
        assert (out.width, out.height) == (1280, 960)
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{fmt:<6} {a * 1e3:>11.1f} {b * 1e3:>9.1f} {b / a:>8.1f}x {1 / a:>10.1f}")


async def engine_throughput(data: bytes, jobs: int) -> None:
    engine = ImageEngine(
        workers=2, memory_budget=512 * 1024 * 1024, decode_timeout=60, wait_timeout=60
    )
    try:
        await engine.run(
            variant_image, data, parse_spec("w100-jpeg"), max_pixels=MAX_PIXELS, memory=64 << 20
        )
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for n in range(jobs):
                spec = parse_spec(f"w{1000 + n}-jpeg")
                tg.start_soon(
                    lambda s=spec: engine.run(
                        variant_image, data, s, max_pixels=MAX_PIXELS, memory=200 << 20
                    )
                )
        elapsed = time.perf_counter() - started
    finally:
        await engine.aclose()
    print(
        f"\nEngine, 2 workers: {jobs} w1000..w{999 + jobs} JPEG renders in {elapsed:.2f} s "
        f"= {jobs / elapsed:.1f} renders/s"
    )


async def first_byte(data: bytes, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), upload_rate_limit=None, auth_rate_limit=None, web_ui=False
        )
        async with Chitram(settings, background=False) as chitram:
            image = await chitram.images.upload(data, filename="photo.jpg")
            app = create_app(chitram)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                paths = {
                    "variant w640 (cached)": f"/api/v1/images/{image.id}/variants/w640",
                    "/file (original)": f"/api/v1/images/{image.id}/file",
                }
                for path in paths.values():  # warm: render the variant, fill the caches
                    assert (await client.get(path)).status_code == 200
                times: dict[str, list[float]] = {name: [] for name in paths}
                for _ in range(requests):
                    for name, path in paths.items():
                        started = time.perf_counter()
                        async with client.stream("GET", path) as resp:
                            async for _chunk in resp.aiter_bytes():
                                times[name].append(time.perf_counter() - started)
                                break
    print(f"\nFirst byte, in-process ASGI, {requests} requests each, alternating")
    print(f"{'target':<22} {'p50 ms':>7} {'p90 ms':>7}")
    for name, values in times.items():
        values.sort()
        p50 = statistics.median(values)
        p90 = values[int(len(values) * 0.9)]
        print(f"{name:<22} {p50 * 1e3:>7.2f} {p90 * 1e3:>7.2f}")
    a = statistics.median(times["variant w640 (cached)"])
    b = statistics.median(times["/file (original)"])
    print(f"ratio variant/file p50: {a / b:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    data = make_photo()
    render_formats(data, args.repeat)
    anyio.run(engine_throughput, data, args.jobs)
    anyio.run(first_byte, data, args.requests)


if __name__ == "__main__":
    main()
