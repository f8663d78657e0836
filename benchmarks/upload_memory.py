"""Peak memory while uploading a 100 MB image stream through the SDK.

Method
------
1. A child process writes a ~100 MB PNG (random RGB noise, 5800x5800, stored uncompressed) to a
   temporary directory, so building the input never touches this process's memory.
2. This process opens a ``Chitram`` on the embedded default (SQLite + file://) with the upload
   limit raised to 200 MB, and warms it up with a small upload (imports, pools, threads).
3. The kernel's peak-RSS counter is reset (``echo 5 > /proc/self/clear_refs``), then the file
   is uploaded as an async iterator of 64 KiB chunks read from disk.
4. Peak RSS growth = ``VmHWM`` after the upload minus ``VmRSS`` before it. Baseline: the same
   measurement around streaming the same file through a null sink (read chunks, drop them), in
   the same run, so the figure isolates what Chitram itself holds.

Target: growth under 32 MB. Run: ``python benchmarks/upload_memory.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

CHUNK = 64 * 1024
SIDE = 5800

MAKE_PNG = f"""
import os, sys
from PIL import Image
img = Image.frombytes("RGB", ({SIDE}, {SIDE}), os.urandom({SIDE} * {SIDE} * 3))
img.save(sys.argv[1], "PNG", compress_level=0)
"""


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(CHUNK):
            yield chunk


async def _measure(label: str, work) -> int:  # type: ignore[no-untyped-def]
    before = _status("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    growth = _status("VmHWM") - before
    print(f"{label:<28} peak RSS growth {growth / 2**20:7.1f} MiB   ({elapsed:.1f} s)")
    return growth


async def main() -> int:
    from chitram_core import Chitram, Settings

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "big.png"
        await anyio.run_process([sys.executable, "-c", MAKE_PNG, str(source)], check=True)
        size = source.stat().st_size
        print(f"input: {size / 2**20:.1f} MiB PNG, {SIDE}x{SIDE}")
        settings = Settings(
            env="test",
            data_dir=Path(tmp) / "data",
            max_upload_bytes=200 * 2**20,
            upload_rate_limit=None,
            strip_metadata=True,
        )
        async with Chitram(settings, background=False) as chitram:
            import io

            from PIL import Image as PILImage

            buf = io.BytesIO()
            PILImage.new("RGB", (64, 64), "red").save(buf, "PNG")
            await chitram.images.upload(buf.getvalue(), filename="warm.png")  # warm-up

            async def null_sink() -> None:
                async for _ in _file_chunks(source):
                    pass

            async def upload() -> None:
                image = await chitram.images.upload(_file_chunks(source), filename="big.png")
                assert image.file_size == size

            baseline = await _measure("baseline (read + discard)", null_sink)
            growth = await _measure("chitram upload", upload)
        print(
            f"chitram growth minus baseline: {(growth - baseline) / 2**20:.1f} MiB "
            f"(ratio to input size {growth / size:.3f})"
        )
        ok = growth < 32 * 2**20
        print("PASS" if ok else "FAIL", "(target: growth under 32 MiB)")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
