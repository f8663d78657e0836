"""Three attacks on ``chitram serve``, each against a "before" tree and this one in the same run.

Method
------
* Each run starts ``python -m chitram_falcon serve --workers 1`` (the installed command, access
  line on) on the embedded default in a fresh data directory, rate limits off unless stated,
  once with ``PYTHONPATH=--before`` (a checkout of the older tree) and once with this tree.
  The figure is given for both, and as the ratio after/before.
* ``gif``: 12 uploads at once (three per user, four users) of a 4.6 MB GIF of 200,000 1x1
  frames; meanwhile ``GET /health/live`` every 20 ms on its own connection. Figures: the
  probe's median, p99 and max while the uploads run.
* ``ai-tag``: a fake OpenAI-compatible tagger on 127.0.0.1 (``tests/tags/fake_openai.py``); one
  8000x5000 PNG uploaded, then 50 ``POST /images/{id}/ai-tag`` calls, ten at a time, with
  ``CHITRAM_AI_TAG_RATE_LIMIT=off`` (to measure memory, not the limiter). Figures: the resident
  size (VmRSS) of the server process alone (not its image workers), sampled every 20 ms: before
  the calls, peak, and after. Then, with the default limit, how many of 20 calls answer 429.
* ``frames`` (this tree only: a bound, not a comparison): 12 uploads at once (four users) of
  GIF animations past the frame budget, six of 10,000 1x1 frames and six of two 8000x5000
  (40 MP) frames, each a few KB; meanwhile ``GET /health/live`` every 20 ms and the server
  process's VmRSS every 20 ms. Figures: the answers, the probe's median and p99, the RSS
  before, at its peak and after (goals: every upload refused with a 400, p99 < 50 ms, RSS
  growth < 100 MB).
* ``fair``: four users queue ten 8000x5000 PNG uploads between them (3+3+2+2); one second
  later a fifth user uploads an 800x600 JPEG. Figure: that upload's latency. Run with
  ``CHITRAM_UPLOAD_CONCURRENCY=16`` on both trees, so that the figure is the engine's
  admission alone (ten uploads could hold all ten default upload slots).
* ``fair-default``: the same with the default settings (ten upload slots), so that the figure
  is the upload slots' admission and then the engine's.

Run:  python benchmarks/attacks.py {gif,frames,ai-tag,fair,fair-default,all}
      [--before DIR] [--json FILE]
(``--before`` default: a git worktree of fecedbc made in a temporary directory.)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from _common import free_port, stop, wait_for
from suite import chitram_env, start

ROOT = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "fecedbc"
PASSWORD = "benchmark password 1"


def gif_bomb(frames: int = 200_000) -> bytes:
    """A valid GIF: 1x1 screen, global palette, ``frames`` 1x1 frames of LZW data."""
    head = b"GIF89a" + (1).to_bytes(2, "little") * 2 + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    control = b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # a graphic control extension per frame
    frame = control + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00" + b"\x02\x02\x44\x01\x00"
    return head + frame * frames + b";"


def png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def jpeg(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def serve(tree: Path, tmp: Path, **extra: str) -> tuple[subprocess.Popen[bytes], str]:
    env = chitram_env(tmp / "data", **extra)
    env["PYTHONPATH"] = str(tree)
    port = free_port()
    command = [sys.executable, "-m", "chitram_falcon", "serve", "--workers", "1"]
    server = start([*command, "--port", str(port)], tmp, env, tmp / "server.log")
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/health", server)
    return server, base


async def token(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    resp = await client.post(
        "/api/v1/auth/register", json={"email": f"{name}@example.com", "password": PASSWORD}
    )
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, data: bytes, mime: str
) -> tuple[int, float]:
    started = time.monotonic()
    resp = await client.post(
        "/api/v1/images/upload", files={"file": (name, data, mime)}, headers=headers
    )
    return resp.status_code, time.monotonic() - started


# --- the attacks ---------------------------------------------------------------------------


class PeakRss:
    """The peak resident set of process ``pid`` while the ``with`` block runs (every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def probed(
    base: str, work: Callable[[], Awaitable[object]], tail: float = 0.0
) -> list[float]:
    """Run ``work`` while ``GET /health/live`` is sent every 20 ms (and ``tail`` s after it):
    the probes' latencies in seconds, sorted."""
    probes: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as prober:
        done = anyio.Event()

        async def probe() -> None:
            while not done.is_set():
                started = time.monotonic()
                await prober.get("/health/live")
                probes.append(time.monotonic() - started)
                await anyio.sleep(0.02)

        async with anyio.create_task_group() as tg:
            tg.start_soon(probe)
            await work()
            await anyio.sleep(tail)
            done.set()
    return sorted(probes)


def latencies(probes: list[float]) -> dict[str, Any]:
    return {
        "probes": len(probes),
        "live_median_ms": statistics.median(probes) * 1000,
        "live_p99_ms": probes[min(len(probes) - 1, int(len(probes) * 0.99))] * 1000,
        "live_max_ms": probes[-1] * 1000,
    }


async def uploaded_at_once(
    client: httpx.AsyncClient, users: list[dict[str, str]], payloads: list[bytes], prefix: str
) -> list[int]:
    """Every payload uploaded as a GIF at the same time (the users in turn): the statuses."""
    statuses: list[int] = []

    async def send(k: int) -> None:
        data = payloads[k]
        status, _ = await upload(
            client, users[k % len(users)], f"{prefix}{k}.gif", data, "image/gif"
        )
        statuses.append(status)

    async with anyio.create_task_group() as senders:
        for k in range(len(payloads)):
            senders.start_soon(send, k)
    return sorted(statuses)


async def gif_attack(base: str) -> dict[str, Any]:
    data = gif_bomb()
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        users = [await token(client, f"gif{k}") for k in range(4)]
        statuses: list[int] = []

        async def attack() -> None:
            statuses.extend(await uploaded_at_once(client, users, [data] * 12, "b"))

        probes = await probed(base, attack)
    return {"gif_bytes": len(data), "statuses": statuses, **latencies(probes)}


def big_frames_gif(width: int = 8000, height: int = 5000, frames: int = 2) -> bytes:
    """A GIF whose ``frames`` frames each claim ``width`` x ``height`` pixels, in a few bytes."""
    size = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    head = b"GIF89a" + size + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    control = b"\x21\xf9\x04\x00\x0a\x00\x00\x00"
    frame = control + b"\x2c\x00\x00\x00\x00" + size + b"\x00" + b"\x02\x02\x44\x01\x00"
    return head + frame * frames + b";"


async def frames_attack(base: str, pid: int) -> dict[str, Any]:
    payloads = [gif_bomb(10_000), big_frames_gif()] * 6
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        users = [await token(client, f"frames{k}") for k in range(4)]
        # One ordinary upload first: the image engine's worker processes start with the first
        # image work, which is not what this attack measures.
        status, _ = await upload(client, users[0], "warm.gif", gif_bomb(2), "image/gif")
        assert status == 201, status
        await anyio.sleep(1)
        before = rss(pid)
        statuses: list[int] = []

        async def attack() -> None:
            statuses.extend(await uploaded_at_once(client, users, payloads, "f"))

        with PeakRss(pid) as peak:
            probes = await probed(base, attack, tail=0.5)
        after = rss(pid)
    return {
        "gif_bytes": [len(payloads[0]), len(payloads[1])],
        "statuses": statuses,
        **latencies(probes),
        "rss_before_mb": before / 2**20,
        "rss_peak_mb": peak.peak / 2**20,
        "rss_after_mb": after / 2**20,
    }


async def ai_tag_attack(base: str, pid: int) -> dict[str, Any]:
    data = png(8000, 5000)
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        headers = await token(client, "tagger")
        resp = await client.post(
            "/api/v1/images/upload", files={"file": ("big.png", data, "image/png")}, headers=headers
        )
        resp.raise_for_status()
        image_id = resp.json()["id"]
        await anyio.sleep(1)
        before = rss(pid)
        statuses: list[int] = []
        limiter = anyio.CapacityLimiter(10)

        async def call() -> None:
            async with limiter:
                r = await client.post(f"/api/v1/images/{image_id}/ai-tag", headers=headers)
                statuses.append(r.status_code)

        with PeakRss(pid) as peak:
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(call)
            await anyio.sleep(1)
        after = rss(pid)
    return {
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "rss_before_mb": before / 2**20,
        "rss_peak_mb": peak.peak / 2**20,
        "rss_after_mb": after / 2**20,
    }


async def limited_calls(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        headers = await token(client, "limited")
        resp = await client.post(
            "/api/v1/images/upload",
            files={"file": ("a.jpg", jpeg(800, 600), "image/jpeg")},
            headers=headers,
        )
        image_id = resp.json()["id"]
        codes = [
            (await client.post(f"/api/v1/images/{image_id}/ai-tag", headers=headers)).status_code
            for _ in range(20)
        ]
    return {"of_20_calls_429": codes.count(429)}


async def fair_attack(base: str) -> dict[str, Any]:
    big = png(8000, 5000)
    small = jpeg(800, 600)
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        attackers = [await token(client, f"big{k}") for k in range(4)]
        victim = await token(client, "victim")
        statuses: list[int] = []

        async def send(k: int) -> None:
            status, _ = await upload(client, attackers[k % 4], f"big{k}.png", big, "image/png")
            statuses.append(status)

        async with anyio.create_task_group() as tg:
            for k in range(10):
                tg.start_soon(send, k)
            await anyio.sleep(1.0)  # the ten bodies are sent and their jobs queued
            status, seconds = await upload(client, victim, "normal.jpg", small, "image/jpeg")
    return {"victim_status": status, "victim_seconds": seconds, "big_statuses": sorted(statuses)}


# --- driver --------------------------------------------------------------------------------


def run(tree: Path, what: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"chitram-attack-{what}-") as name:
        tmp = Path(name)
        extra: dict[str, str] = {}
        if what == "fair":
            # Ten uploads would hold all ten default upload slots (a stage before image work,
            # first come first served): sixteen, so that the figure is the engine's admission.
            extra["CHITRAM_UPLOAD_CONCURRENCY"] = "16"
        fake = None
        if what == "ai-tag":
            sys.path.insert(0, str(ROOT / "tests" / "tags"))
            from fake_openai import FakeOpenAI  # type: ignore[import-not-found]

            fake = FakeOpenAI()
            extra.update(
                CHITRAM_TAGGERS="openai",
                CHITRAM_OPENAI_BASE_URL=fake.base_url,
                CHITRAM_OPENAI_API_KEY="sk-benchmark",
                CHITRAM_AI_TAG_RATE_LIMIT="off",
            )
        server, base = serve(tree, tmp, **extra)
        try:
            attacks: dict[str, Callable[[], Any]] = {
                "gif": lambda: anyio.run(gif_attack, base),
                "frames": lambda: anyio.run(frames_attack, base, server.pid),
                "ai-tag": lambda: anyio.run(ai_tag_attack, base, server.pid),
                "fair": lambda: anyio.run(fair_attack, base),
                "fair-default": lambda: anyio.run(fair_attack, base),
            }
            result: dict[str, Any] = attacks[what]()
        finally:
            stop(server)
        if what == "ai-tag":
            extra.pop("CHITRAM_AI_TAG_RATE_LIMIT")
            (tmp / "limited").mkdir()
            server, base = serve(tree, tmp / "limited", **extra)
            try:
                result.update(anyio.run(limited_calls, base))
            finally:
                stop(server)
            assert fake is not None
            fake.down()
    return result


def before_tree(given: Path | None, tmp: Path) -> Path:
    if given is not None:
        return given
    tree = tmp / "before"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), BASELINE_COMMIT],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("what", choices=["gif", "frames", "ai-tag", "fair", "fair-default", "all"])
    parser.add_argument("--before", type=Path, default=None, help="the older source tree")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    whats = ["gif", "frames", "ai-tag", "fair", "fair-default"]
    whats = whats if args.what == "all" else [args.what]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="chitram-attacks-") as name:
        before = before_tree(args.before, Path(name))
        try:
            for what in whats:
                trees = (("before", before), ("after", ROOT))
                for label, tree in trees[1:] if what == "frames" else trees:
                    results[f"{what}/{label}"] = found = run(tree, what)
                    print(f"{what:<12} {label:<7} {json.dumps(found)}", flush=True)
        finally:
            if args.before is None:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False
                )
    print(f"load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
