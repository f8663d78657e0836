"""GET /api/v1/images/{id}/file of a 20 KB image, against a raw ASGI app serving the same bytes.

Method
------
* Both servers are uvicorn, one worker, the same event loop and HTTP implementation (whatever
  uvicorn picks in this environment: uvloop/httptools when installed, else asyncio/h11), bound
  to 127.0.0.1, logging at warning level (no access log), each in its own subprocess.
* (a) ``raw``: a bare ASGI callable that answers every request with the 20 KB held in memory
  (Content-Type and Content-Length only). It is the ceiling for this server stack.
* (b) ``chitram``: ``chitram serve`` on the embedded default (SQLite + local files, in-process
  cache) in a fresh temporary data directory; one registered user uploads the 20 KB PNG, then
  every request is ``GET /api/v1/images/{id}/file`` with no Authorization header — the public
  hot path (metadata from the cache when it is on, bytes streamed from local storage, ETag and
  security headers).
* Load: ``wrk`` (installed from Debian with apt-get when missing) with ``--latency``, keep-alive
  connections, one wrk thread so the server keeps the other core of a 2-core machine.
  Each target is warmed up, then measured in interleaved rounds (raw, chitram, raw, chitram, ...)
  so drift in the machine affects both alike. Requests/s is the mean over rounds; p50 / p99 are
  wrk's latency percentiles, averaged over rounds. The ratio is chitram / raw requests/s.
* Every response of the measured runs must be 2xx (wrk counts non-2xx; the run fails if any);
  socket errors (wrk's 2 s timeouts included) are counted and printed.

Run:  python benchmarks/http_file.py [--duration 10] [--rounds 2] [--connections 16]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from _common import ensure_wrk, free_port, parse_ms, raw_server, wait_for

ROOT = Path(__file__).resolve().parents[1]
TARGET_BYTES = 20 * 1024


# the raw ASGI baseline (run in its own process: python http_file.py --raw-server PORT FILE) --


# helpers ------------------------------------------------------------------------------------


def png_of_about(size: int) -> bytes:
    """A PNG close to ``size`` bytes: noise compresses badly, so its size tracks its pixels."""
    from PIL import Image

    side = 40
    while True:
        buffer = io.BytesIO()
        Image.effect_noise((side, side), 40).convert("RGB").save(buffer, "PNG")
        if buffer.tell() >= size:
            return buffer.getvalue()
        side += 2


def request_json(method: str, url: str, body: bytes, headers: dict[str, str]) -> Any:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def upload(base: str, data: bytes) -> str:
    session = request_json(
        "POST",
        f"{base}/api/v1/auth/register",
        json.dumps({"email": "bench@example.com", "password": "benchmark password"}).encode(),
        {"Content-Type": "application/json"},
    )
    boundary = "chitrambenchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.png"'
            f"\r\nContent-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    image = request_json(
        "POST",
        f"{base}/api/v1/images/upload",
        body,
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": f"Bearer {session['access_token']}",
        },
    )
    return str(image["url"])


def run_wrk(wrk: str, url: str, *, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"non-2xx answers during the run against {url}:\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = parse_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = parse_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    failed = sum(int(n) for n in errors.groups()) if errors else 0
    return {"rps": rps, "p50": p50, "p99": p99, "errors": failed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--raw-server", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        raw_server(int(args.raw_server[0]), args.raw_server[1], b"image/png")
        return 0

    wrk = ensure_wrk()
    data = png_of_about(TARGET_BYTES)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="chitram-bench-") as tmp:
        image_path = Path(tmp) / "bench.png"
        image_path.write_bytes(data)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
        env.update(
            CHITRAM_DATA_DIR=str(Path(tmp) / "data"),
            CHITRAM_UPLOAD_RATE_LIMIT="off",
            CHITRAM_AUTH_RATE_LIMIT="off",
        )
        chitram_port, raw_port = free_port(), free_port()
        try:
            chitram = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chitram_falcon",
                    "serve",
                    "--port",
                    str(chitram_port),
                    "--quiet",
                ],
                cwd=tmp,
                env=env,
            )
            procs.append(chitram)
            raw = subprocess.Popen(
                [sys.executable, __file__, "--raw-server", str(raw_port), str(image_path)],
                cwd=tmp,
                env=env,
            )
            procs.append(raw)
            base = f"http://127.0.0.1:{chitram_port}"
            wait_for(f"{base}/health/live", chitram)
            wait_for(f"http://127.0.0.1:{raw_port}/", raw)
            path = upload(base, data)
            targets = {"raw": f"http://127.0.0.1:{raw_port}/", "chitram": f"{base}{path}"}
            with urllib.request.urlopen(targets["chitram"]) as resp:
                assert resp.read() == data, "chitram served different bytes"

            for url in targets.values():  # warm-up: caches, connections, JIT-less but fair
                run_wrk(wrk, url, duration=3, connections=args.connections)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, url in targets.items():
                    results[name].append(
                        run_wrk(wrk, url, duration=args.duration, connections=args.connections)
                    )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def mean(name: str, key: str) -> float:
        return sum(r[key] for r in results[name]) / len(results[name])

    print(
        f"\nGET of a {len(data)} byte PNG; wrk -t1 -c{args.connections}, "
        f"{args.rounds} x {args.duration}s rounds; {os.cpu_count()} CPUs"
    )
    print(f"{'target':<40} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'sock err':>9}")
    labels = {
        "raw": "(a) raw ASGI, bytes in memory",
        "chitram": "(b) chitram GET /api/v1/images/{id}/file",
    }
    for name in targets:
        errors = sum(r["errors"] for r in results[name])
        print(
            f"{labels[name]:<40} {mean(name, 'rps'):>10.0f} {mean(name, 'p50'):>9.2f} "
            f"{mean(name, 'p99'):>9.2f} {errors:>9.0f}"
        )
    ratio = mean("chitram", "rps") / mean("raw", "rps")
    print(f"ratio (b)/(a) requests/s: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
