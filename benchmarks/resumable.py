"""Resumable (tus) uploads against one multipart request of the same file, on a real server.

Method
------
1. ``chitram serve`` as installed (``python -m chitram_falcon serve``, access line on, one
   worker) on 127.0.0.1 with the embedded default (SQLite + file://), upload limits raised to
   300 MiB, the pixel limit raised to the test image's, rate limits off.
2. Each round, a child process writes a new ~100 MB PNG (random noise, 5800x5800, stored
   uncompressed; a new seed each round, so nothing is deduplicated; ``--side 8200``: ~200 MB).
3. The same round uploads it twice, in alternating order from round to round: once as one
   multipart ``POST /api/v1/images/upload`` streamed from disk, once as
   ``POST /api/v1/uploads`` then ``PATCH`` chunks of ``--chunk`` bytes (default 5 MiB), read
   from disk one chunk at a time. Wall time of each, from the first byte sent to the answer
   carrying the image.
4. Server memory: before each upload the server's peak-RSS counter is reset
   (``/proc/<pid>/clear_refs``, needs root or the same user); growth = ``VmHWM`` after minus
   ``VmRSS`` before.
5. Figures are ratios within the run: resumable time / multipart time, per round and the median.

   The growth over every chunk but the last (the transfer without the finish, whose image work
   is the same as a multipart upload's) is reported too.

Targets: resumable within 2x of multipart; server RSS growth under 64 MB for the resumable
upload (the issue's target) and, reported alongside, for the multipart one (the same ingest).
Run: ``python benchmarks/resumable.py [--rounds 3] [--chunk 5242880] [--side 5800]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _common import free_port, stop, wait_for

MAKE_PNG = """
import random, sys
from PIL import Image
side, seed = int(sys.argv[2]), int(sys.argv[3])
img = Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3))
img.save(sys.argv[1], "PNG", compress_level=0)
"""
TUS = {"Tus-Resumable": "1.0.0"}


def status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def file_chunks(path: Path, size: int = 64 * 1024) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def multipart(client: httpx.Client, token: str, path: Path) -> str:
    boundary = "chitram-bench-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from file_chunks(path)
        yield tail

    length = len(head) + path.stat().st_size + len(tail)
    resp = client.post(
        "/api/v1/images/upload",
        content=body(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(length),
        },
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


TRANSFER: list[int] = []
"""Server RSS growth over every chunk but the last (the transfer alone, without the finish)."""


def resumable(client: httpx.Client, token: str, path: Path, chunk: int, pid: int) -> str:
    auth = {"Authorization": f"Bearer {token}", **TUS}
    size = path.stat().st_size
    created = client.post("/api/v1/uploads", headers={**auth, "Upload-Length": str(size)})
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    offset = 0
    before = status(pid, "VmRSS")
    with path.open("rb") as handle:
        while offset < size:
            data = handle.read(chunk)
            if offset + len(data) == size:
                TRANSFER.append(status(pid, "VmHWM") - before)
            resp = client.patch(
                location,
                content=data,
                headers={
                    **auth,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            assert resp.status_code == 204, resp.text
            offset = int(resp.headers["Upload-Offset"])
    return resp.headers["Chitram-Image-Id"]


def measure(pid: int, work) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    before = status(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    return elapsed, status(pid, "VmHWM") - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=5 * 1024 * 1024)
    parser.add_argument("--side", type=int, default=5800)
    args = parser.parse_args()
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "CHITRAM_DATA_DIR": f"{tmp}/data",
            "CHITRAM_MAX_UPLOAD_BYTES": str(300 * 2**20),
            "CHITRAM_MAX_RESUMABLE_BYTES": str(300 * 2**20),
            "CHITRAM_UPLOAD_RATE_LIMIT": "off",
            "CHITRAM_AUTH_RATE_LIMIT": "off",
            "CHITRAM_UPLOAD_TIMEOUT": "600",
            "CHITRAM_MAX_PIXELS": str(max(40_000_000, args.side * args.side)),
        }
        log = open(f"{tmp}/server.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "-m", "chitram_falcon", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/health/live", proc)
            with httpx.Client(base_url=base, timeout=600) as client:
                token = client.post(
                    "/api/v1/auth/register",
                    json={"email": "bench@example.com", "password": "correct horse battery"},
                ).json()["access_token"]
                ratios, growths, multipart_growths = [], [], []
                for n in range(args.rounds):
                    files = []
                    for which in ("a", "b"):
                        path = Path(tmp) / f"round{n}{which}.png"
                        seed = str(n * 2 + (which == "b"))
                        subprocess.run(
                            [sys.executable, "-c", MAKE_PNG, str(path), str(args.side), seed],
                            check=True,
                        )
                        files.append(path)
                    size = files[0].stat().st_size
                    a, b = files

                    def whole(a: Path = a) -> str:
                        return multipart(client, token, a)

                    def tus(b: Path = b) -> str:
                        return resumable(client, token, b, args.chunk, proc.pid)

                    order = [("multipart", whole), ("resumable", tus)]
                    if n % 2:
                        order.reverse()
                    got = {name: measure(proc.pid, work) for name, work in order}
                    (mt, mg), (rt, rg) = got["multipart"], got["resumable"]
                    ratios.append(rt / mt)
                    growths.append(rg)
                    multipart_growths.append(mg)
                    print(
                        f"round {n + 1}: {size / 2**20:.1f} MiB  multipart {mt:6.2f} s "
                        f"(RSS +{mg / 2**20:.1f} MiB)  resumable {rt:6.2f} s "
                        f"(RSS +{rg / 2**20:.1f} MiB, chunks before the last "
                        f"+{TRANSFER[-1] / 2**20:.1f} MiB)  ratio {rt / mt:.2f}"
                    )
                    for path in files:
                        path.unlink()
        finally:
            stop(proc)
            log.close()
    median = statistics.median(ratios)
    worst = max(growths)
    print(
        f"median resumable/multipart time: {median:.2f}; worst server RSS growth: resumable "
        f"{worst / 2**20:.1f} MiB, multipart {max(multipart_growths) / 2**20:.1f} MiB"
    )
    ok = median <= 2.0 and worst < 64 * 2**20
    print("PASS" if ok else "FAIL", "(targets: ratio <= 2, resumable RSS growth under 64 MiB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
