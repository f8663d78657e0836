"""Hostile images at once against ``chitram serve``: memory of the whole process tree, answers.

Method
------
* ``chitram serve --workers 1 --quiet`` on the embedded default in a fresh data directory,
  upload rate limit off, every other setting at its default; one registered user.
* Sent at once (one connection each): three copies of a 40-byte lossless WebP claiming
  6300x6300, a 40-megapixel PNG (8000x5000, one colour), a progressive JPEG with 20,000 scans
  (``chitram_core.testing.bombs``); then ``GET /thumbnail`` of whatever was stored, at once;
  then one normal 64x48 JPEG upload.
* A thread samples the resident memory (``VmRSS``) of the server and all its descendants every
  20 ms; the figure is the peak minus the value before the first request.
* Done when (issue 11): the tree grows < 400 MB, the scan bomb gets a 4xx within 3 s, nothing is
  5xx or takes > 30 s, and the normal upload works right after.

Run:  python benchmarks/hostile.py [--source DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, stop, wait_for
from suite import chitram_env, start

from chitram_core.testing.bombs import jpeg_scan_bomb, webp_canvas_bomb


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every descendant."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            continue
        child = int(entry)
        children.setdefault(int(fields["PPid"].strip()), []).append(child)
        rss[child] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(children.get(current, []))
    return total


def png_40mp() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8000, 5000), (90, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def small_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "blue").save(buffer, "JPEG")
    return buffer.getvalue()


async def attack(base: str) -> list[dict[str, Any]]:
    import anyio

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        resp = await client.post(
            "/api/v1/auth/register",
            json={"email": "hostile@example.com", "password": "benchmark password"},
        )
        headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        files = [
            ("webp-1", webp_canvas_bomb(), "image/webp"),
            ("webp-2", webp_canvas_bomb(6301, 6299), "image/webp"),
            ("webp-3", webp_canvas_bomb(6299, 6301), "image/webp"),
            ("png-40mp", png_40mp(), "image/png"),
            ("jpeg-20000-scans", jpeg_scan_bomb(20000), "image/jpeg"),
        ]
        results: list[dict[str, Any]] = []

        async def send(name: str, data: bytes, mime: str) -> None:
            started = time.monotonic()
            resp = await client.post(
                "/api/v1/images/upload", files={"file": (name, data, mime)}, headers=headers
            )
            results.append(
                {
                    "what": f"upload {name} ({len(data)} B)",
                    "status": resp.status_code,
                    "seconds": time.monotonic() - started,
                    "id": resp.json().get("id") if resp.status_code == 201 else None,
                }
            )

        async with anyio.create_task_group() as tg:
            for name, data, mime in files:
                tg.start_soon(send, name, data, mime)

        async def thumb(image_id: str) -> None:
            started = time.monotonic()
            resp = await client.get(f"/api/v1/images/{image_id}/thumbnail")
            results.append(
                {
                    "what": f"thumbnail {image_id[:8]}",
                    "status": resp.status_code,
                    "seconds": time.monotonic() - started,
                }
            )

        async with anyio.create_task_group() as tg:
            for item in list(results):
                if item["id"]:
                    tg.start_soon(thumb, item["id"])
        started = time.monotonic()
        resp = await client.post(
            "/api/v1/images/upload",
            files={"file": ("normal.jpg", small_jpeg(), "image/jpeg")},
            headers=headers,
        )
        results.append(
            {
                "what": "upload normal.jpg afterwards",
                "status": resp.status_code,
                "seconds": time.monotonic() - started,
            }
        )
        return results


def main() -> int:
    import anyio

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", type=Path, default=None, help="serve from this source tree")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chitram-hostile-") as tmp_name:
        tmp = Path(tmp_name)
        env = chitram_env(tmp / "data")
        if args.source is not None:
            env["PYTHONPATH"] = str(args.source)
        port = free_port()
        command = [sys.executable, "-m", "chitram_falcon", "serve", "--port", str(port)]
        server = start([*command, "--quiet"], tmp, env, tmp / "server.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/health", server)
            time.sleep(1)
            baseline = tree_rss(server.pid)
            peak = baseline
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, tree_rss(server.pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            results = anyio.run(attack, base)
            done.set()
            sampler.join()
        finally:
            stop(server)
    for item in results:
        print(f"{item['what']:<40} {item['status']}  {item['seconds']:.2f} s")
    growth = peak - baseline
    print(
        f"process tree: {baseline / 2**20:.0f} MB before, peak {peak / 2**20:.0f} MB "
        f"(+{growth / 2**20:.0f} MB); load average {os.getloadavg()[0]:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps({"baseline": baseline, "peak": peak, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
