"""Memory growth of ``chitram serve`` while 30 logins arrive at once.

Method
------
1. Two ``chitram serve`` processes are started, each in its own empty temporary folder with only
   the rate limits turned off (``CHITRAM_UPLOAD_RATE_LIMIT=off``, ``CHITRAM_AUTH_RATE_LIMIT=off``):
   - **limited**: the defaults (password hashing limited to the CPU count);
   - **baseline**: ``CHITRAM_HASH_CONCURRENCY=40``, which lets as many argon2 hashes run at once
     as anyio's shared thread pool did before the limiter existed (the 0.1.0 behaviour), and
     ``CHITRAM_HASH_WAIT_TIMEOUT=120`` so nothing is refused.
2. One user is registered on each, the process settles for a second, and the RSS of the server's
   process tree (psutil, the server and its children) is read.
3. 30 threads post the login at once; the tree's RSS is sampled every 20 ms until all answered.
4. Reported per server: growth = peak RSS - RSS before, the answers (200 / 503) and the time.
   The ratio limited / baseline is the figure to compare across machines.

Run: ``python benchmarks/login_memory.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

LOGINS = 30
PASSWORD = "benchmark password"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


def measure(label: str, folder: Path, **extra: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
    env.update(CHITRAM_UPLOAD_RATE_LIMIT="off", CHITRAM_AUTH_RATE_LIMIT="off", **extra)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "chitram_falcon", "serve", "--port", str(port), "--quiet"],
        cwd=folder,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/live").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: the server did not start")
            time.sleep(0.2)
        account = {"email": "bench@example.com", "password": PASSWORD}
        httpx.post(f"{base}/api/v1/auth/register", json=account, timeout=60).raise_for_status()
        time.sleep(1.0)
        process = psutil.Process(server.pid)
        before = _tree_rss(process)
        samples = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(_tree_rss(process))
                time.sleep(0.02)

        statuses: list[str] = []

        def login() -> None:
            resp = httpx.post(f"{base}/api/v1/auth/login", json=account, timeout=180)
            ok = resp.status_code == 200
            statuses.append("200" if ok else f"{resp.status_code} {resp.json()['detail']['code']}")

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        threads = [threading.Thread(target=login) for _ in range(LOGINS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.monotonic() - started
        time.sleep(0.3)
        done.set()
        sampler.join()
        return {
            "label": label,
            "before_mib": before / 2**20,
            "growth_mib": (max(samples) - before) / 2**20,
            "answers": dict(Counter(statuses)),
            "seconds": took,
        }
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for label, extra in (
            ("limited (defaults)", {}),
            (
                "baseline (40 at once)",
                {"CHITRAM_HASH_CONCURRENCY": "40", "CHITRAM_HASH_WAIT_TIMEOUT": "120"},
            ),
        ):
            folder = Path(tmp) / label.split()[0]
            folder.mkdir()
            results.append(measure(label, folder, **extra))
    print(f"load average before: {os.getloadavg()[0]:.1f}, CPUs: {os.cpu_count()}")
    for r in results:
        print(
            f"{r['label']:24} RSS before {r['before_mib']:6.0f} MiB  growth {r['growth_mib']:6.0f}"
            f" MiB  answers {r['answers']}  {r['seconds']:.1f} s"
        )
    limited, baseline = results
    ratio = float(limited["growth_mib"]) / max(float(baseline["growth_mib"]), 1.0)  # type: ignore[arg-type]
    print(f"growth ratio limited / baseline: {ratio:.2f}")


if __name__ == "__main__":
    main()
