"""Slow bodies against ``chitram serve``: does another user's upload still get through?

Method
------
* Each server is ``chitram serve --port P --quiet`` started in its own **empty temporary folder**
  with no ``CHITRAM_*`` variable set except the rate limits off (``CHITRAM_UPLOAD_RATE_LIMIT=off``,
  ``CHITRAM_AUTH_RATE_LIMIT=off``), as issue 12 states the check:
  - **this tree** (the checkout this script is in);
  - **baseline**: the 0.1.0 code (``3a42aa9``, before the upload-edge hardening), extracted
    with ``git archive`` into a temporary folder and put first on ``PYTHONPATH`` of the
    same venv (``--baseline-source DIR`` to point at another tree, ``--no-baseline`` to skip it).
* Four users register. Three of them ("attackers") open **12 uploads** (four each: this tree's
  per-user cap; the baseline has none): ``POST /api/v1/images/upload`` with a 1 MiB
  ``Content-Length``, of which the headers and the first 64 KiB of a multipart body are sent;
  then nothing more, the connection left open.
* One second later the fourth user uploads a normal ~200 KB JPEG; the figure is its status and
  seconds (the issue's target: **201 within 25 s**). Then each stalled connection is watched for
  up to ``--watch`` seconds (default 40): what it is answered (this tree: 408 after the 15 s idle
  timeout) and when.
* Wall time on a 2-core machine: the timeouts are seconds, so other load does not change what
  the figures mean.

Run:  python benchmarks/stalled_uploads.py [--watch 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from _common import free_port, stop, wait_for

ROOT = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "3a42aa9"
STALLED = 12
ATTACKERS = 3
PASSWORD = "stalled benchmark password 1"
DECLARED = 1024 * 1024
SENT = 64 * 1024


def jpeg(seed: int) -> bytes:
    import random

    from PIL import Image

    rng = random.Random(seed)
    image = Image.new("RGB", (640, 480))
    image.putdata(
        [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(640 * 480)]
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=70)
    return out.getvalue()


def baseline_tree(tmp: Path) -> Path:
    target = tmp / "baseline-src"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BASELINE_COMMIT], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


async def register(client: httpx.AsyncClient, email: str) -> str:
    resp = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    resp.raise_for_status()
    token: str = resp.json()["access_token"]
    return token


async def stalled_upload(
    port: int, token: str, started: anyio.Event, watch: float, out: list[dict[str, Any]]
) -> None:
    """Headers and 64 KiB of a declared 1 MiB body, then silence; record the answer, if any."""
    boundary = "stalledbenchmarkboundary"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    head = (
        f"POST /api/v1/images/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {DECLARED}\r\n\r\n"
    ).encode()
    body = preamble + b"\xff\xd8\xff\xe0" + b"\0" * (SENT - len(preamble) - 4)
    stream = await anyio.connect_tcp("127.0.0.1", port)
    opened = time.monotonic()
    await stream.send(head + body)
    started.set()
    answer = b""
    with anyio.move_on_after(watch):
        try:
            while b"\r\n" not in answer:
                answer += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            pass
    await stream.aclose()
    line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    out.append(
        {
            "status": int(line.split()[1]) if line.startswith("HTTP/") else None,
            "seconds": round(time.monotonic() - opened, 2),
            "closed_without_answer": bool(not answer),
        }
    )


async def attack(port: int, watch: float) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        tokens = [await register(client, f"attacker{i}@example.com") for i in range(ATTACKERS)]
        victim = await register(client, "victim@example.com")
        stalled: list[dict[str, Any]] = []
        result: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:
            events = []
            for i in range(STALLED):
                event = anyio.Event()
                events.append(event)
                tg.start_soon(stalled_upload, port, tokens[i % ATTACKERS], event, watch, stalled)
            for event in events:
                await event.wait()
            await anyio.sleep(1.0)
            started = time.monotonic()
            try:
                resp = await client.post(
                    "/api/v1/images/upload",
                    headers={"Authorization": f"Bearer {victim}"},
                    files={"file": ("victim.jpg", jpeg(7), "image/jpeg")},
                )
                result["victim"] = {
                    "status": resp.status_code,
                    "seconds": round(time.monotonic() - started, 2),
                    "code": resp.json().get("detail", {}).get("code")
                    if resp.status_code >= 400
                    else None,
                }
            except httpx.HTTPError as exc:
                result["victim"] = {
                    "status": None,
                    "seconds": round(time.monotonic() - started, 2),
                    "error": type(exc).__name__,
                }
        result["stalled"] = sorted(stalled, key=lambda s: (s["status"] or 0, s["seconds"]))
        return result


def measure(label: str, folder: Path, source: Path | None, watch: float) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
    env.update(CHITRAM_UPLOAD_RATE_LIMIT="off", CHITRAM_AUTH_RATE_LIMIT="off")
    if source is not None:
        env["PYTHONPATH"] = str(source)
    port = free_port()
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "chitram_falcon", "serve", "--port", str(port), "--quiet"],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health/live", server)
        print(f"{label}: attacking ...", file=sys.stderr, flush=True)
        result = anyio.run(attack, port, watch)
    finally:
        stop(server)
        log.close()
    result["label"] = label
    return result


def summary(result: dict[str, Any]) -> str:
    victim = result["victim"]
    counts: dict[str, list[float]] = {}
    for item in result["stalled"]:
        key = str(item["status"]) if item["status"] else "no answer"
        counts.setdefault(key, []).append(item["seconds"])
    stalled = ", ".join(
        f"{len(times)} x {key} ({min(times):.1f}-{max(times):.1f} s)"
        for key, times in sorted(counts.items())
    )
    verdict = "ok" if victim["status"] == 201 and victim["seconds"] <= 25 else "NOT MET"
    return (
        f"{result['label']:<10} victim upload: {victim['status']} in {victim['seconds']:.2f} s "
        f"[{verdict}]; the {STALLED} stalled uploads: {stalled}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--watch", type=float, default=40.0, help="seconds to watch stalled ones")
    parser.add_argument("--baseline-source", type=Path, default=None)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="chitram-stalled-") as tmp_name:
        tmp = Path(tmp_name)
        targets: list[tuple[str, Path | None]] = [("this tree", None)]
        if not args.no_baseline:
            targets.append(("baseline", args.baseline_source or baseline_tree(tmp)))
        for label, source in targets:
            folder = tmp / label.replace(" ", "-")
            folder.mkdir()
            results.append(measure(label, folder, source, args.watch))
    print(
        f"load average {os.getloadavg()[0]:.2f}; {STALLED} stalled uploads from {ATTACKERS} users"
    )
    for result in results:
        print(summary(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = results[0]["victim"]["status"] == 201 and results[0]["victim"]["seconds"] <= 25
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
