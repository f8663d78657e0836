"""20,000 connections that send half a request head, against ``chitram serve`` as installed.

Method
------
* ``chitram serve`` (the ``chitram`` command next to this interpreter, access line on, default
  settings: ``CHITRAM_HEADER_TIMEOUT`` 10 s, ``CHITRAM_MAX_CONNECTIONS`` 2048) in a fresh data
  directory on a free port of 127.0.0.1; the script raises its soft open-files limit to the
  hard one first (the server inherits it; ``chitram serve`` raises its own as needed).
* Two attacker processes (the open-files limit is per process) each open ``--connections / 2``
  connections, 400 connects at a time, and send ``GET /health/live HTTP/1.1\\r\\nHost: x\\r\\n``
  (a head never finished); each then waits until the server closes every one (or ``--wait``).
* Once both have opened theirs, a normal client sends ``GET /health/live`` on a new connection
  five times; the figure is the slowest answer. The server's open descriptors are counted
  from ``/proc/<pid>/fd`` then, and after the attackers report.
* Reported: connections opened, refused or reset at connect, closed by the server, the longest
  any was held open (from its half head to the server's close), the normal client's slowest
  answer, the server's descriptors during and after.

Goal: the normal answer within 1 s, every connection closed within the header timeout (plus
the time to open them all), descriptors back to their idle count.

Run:  python benchmarks/slow_headers.py [--connections 20000] [--wait 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HALF = b"GET /health/live HTTP/1.1\r\nHost: x\r\n"


def raise_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def attack(port: int, count: int, wait: float) -> dict[str, float]:
    gate = asyncio.Semaphore(400)
    held: list[float] = []
    failed = 0
    closed = 0

    async def one() -> None:
        nonlocal failed, closed
        async with gate:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(HALF)
                await writer.drain()
            except OSError:
                failed += 1
                return
        sent = time.monotonic()
        opened.append(1)
        try:
            await asyncio.wait_for(reader.read(), wait)
            closed += 1
        except TimeoutError:  # still open after ``wait``: not closed by the server
            pass
        except OSError:  # reset by the server
            closed += 1
        held.append(time.monotonic() - sent)
        writer.close()

    opened: list[int] = []
    tasks = [asyncio.create_task(one()) for _ in range(count)]
    while len(opened) + failed < count:  # noqa: ASYNC110 - a progress poll, once per run
        await asyncio.sleep(0.05)
    print(json.dumps({"opened": len(opened)}), flush=True)
    await asyncio.gather(*tasks)
    return {
        "opened": len(opened),
        "failed": failed,
        "closed": closed,
        "held_max": max(held, default=0.0),
    }


def normal_request(port: int) -> float:
    began = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=30) as resp:
        resp.read()
    return time.monotonic() - began


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--wait", type=float, default=60.0)
    parser.add_argument("--attack", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_limit()
    if args.attack:
        port, count, wait = int(args.attack[0]), int(args.attack[1]), float(args.attack[2])
        print(json.dumps(asyncio.run(attack(port, count, wait))), flush=True)
        return 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CHITRAM_DATA_DIR": tmp, "CHITRAM_ENV": "development"}
        chitram = str(Path(sys.executable).with_name("chitram"))
        log = open(Path(tmp) / "serve.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [chitram, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        try:
            for _ in range(600):
                try:
                    normal_request(port)
                    break
                except OSError:
                    time.sleep(0.1)
            idle = descriptors(server.pid)
            half = args.connections // 2
            attackers = [
                subprocess.Popen(
                    [sys.executable, __file__, "--attack", str(port), str(n), str(args.wait)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for n in (half, args.connections - half)
            ]
            began = time.monotonic()
            for attacker in attackers:
                assert attacker.stdout is not None
                attacker.stdout.readline()  # {"opened": n}
            opened_after = time.monotonic() - began
            slowest = max(normal_request(port) for _ in range(5))
            during = descriptors(server.pid)
            reports = []
            for attacker in attackers:
                assert attacker.stdout is not None
                reports.append(json.loads(attacker.stdout.readline()))
                attacker.wait()
            after = descriptors(server.pid)
        finally:
            server.terminate()
            server.wait(30)
            log.close()
    total = {k: sum(r[k] for r in reports) for k in ("opened", "failed", "closed")}
    print(
        f"{args.connections} half-sent heads: opened {total['opened']} "
        f"(refused/reset at connect {total['failed']}) in {opened_after:.1f} s; "
        f"closed by the server {total['closed']}; longest held "
        f"{max(r['held_max'] for r in reports):.1f} s"
    )
    print(f"normal GET /health/live meanwhile: slowest of 5 {slowest * 1000:.0f} ms")
    print(f"server descriptors: idle {idle}, during {during}, after {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
