"""The HTTP benchmark suite: the read and upload paths against a raw ASGI ceiling, in one run.

Method
------
* Every server is uvicorn with one worker on 127.0.0.1, logging at warning level, in its own
  subprocess pinned with ``taskset`` to one CPU (``--server-cpu``, default 1) while wrk is
  pinned to another (``--wrk-cpu``, default 0); all are started before the first measurement
  and left idle while another is measured:
  - (a) ``raw``: a bare ASGI callable answering every request with 20 KB held in memory
    (Content-Type and Content-Length only), run on uvloop + httptools (the fastest stock
    uvicorn): the ceiling of this server stack on this machine;
  - (f) ``falcon``: a bare Falcon app serving the same bytes on the same stack: Falcon's floor;
  - ``chitram serve --workers 1`` as installed (the access line on, written to the server's log
    file), from the venv of ``--chitram-python`` (default: this interpreter; a fresh
    ``pip install 'chitram[server]'`` venv is what a user runs), on the **embedded** default:
    SQLite + local files + the in-process cache and rate limiter, in a fresh temporary data
    directory;
  - the same with ``--quiet`` (no access line), beside it (backend ``SQLite+memory quiet``);
  - the same on **PostgreSQL + Redis**: a fresh database on the PostgreSQL at 127.0.0.1:5432
    (``chitram db upgrade`` first, dropped at the end), Redis at 127.0.0.1:6379 for the cache
    (near cache on, the default) and rate limiter under a unique key prefix (deleted at the
    end), local files for storage.
* Each chitram server gets one registered user, who uploads the 20 KB JPEG; then
  (b) ``GET /api/v1/images/{id}/file``, (c) ``GET /api/v1/images/{id}`` and
  (e) ``GET /api/v1/images/{id}/thumbnail`` are requested with no Authorization header (the
  public read path; caches are warm after the first request), and (d)
  ``POST /api/v1/images/upload`` of a 200 KB JPEG with the user's bearer token, built by a wrk
  Lua script as multipart/form-data. Each upload differs in two bytes of the JPEG's
  quantisation table (still a valid, different image), so every upload stores new bytes and
  makes a new thumbnail, as real uploads do; no deduplication flatters the figure. The upload
  rate limit is off (``CHITRAM_UPLOAD_RATE_LIMIT=off``); the concurrency limit is the default.
* Load: ``wrk`` (installed from Debian with apt-get when missing), ``--latency``, keep-alive,
  ``-t1 -c32`` by default. Each target has a short warm-up, then ``--rounds`` (default 3)
  interleaved measured runs of ``--duration`` seconds; reads come first in each round and
  uploads last, and every run waits until the servers are idle (an upload run leaves
  thumbnails rendering). Requests/s, p50 and p99 are medians over rounds; every ratio is the
  median over rounds of the ratio within one round, so drift in a shared machine's load hits
  both sides of a ratio alike.
* CPU: the user + system time of the target's server process during each measured run (from
  ``/proc``; an upload's image worker processes are not in it), over the requests answered:
  ``CPU µs`` per request, and ``CPU (a)``, raw ASGI's CPU per request over the target's in the
  same round (median over rounds). Unlike the req/s ratio it does not move with how fast wrk
  runs on its shared core: when the machine is busy, wrk limits raw ASGI before chitram and
  the req/s ratio rises.
* Any non-2xx answer or socket error during a measured run is counted and printed; a target
  with non-2xx answers is marked ``!``.

Targets (2 cores, one uvicorn worker, access line on): (b) >= 75 % of (a), (c) >= 80 % of (a),
median of 5 rounds, on the embedded default; PostgreSQL + Redis are shown beside.

Run:  python benchmarks/suite.py [--duration 10] [--rounds 3] [--connections 32]
      [--only embedded|postgres] [--no-upload] [--chitram-python PATH] [--profile DIR]
      [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from _common import (
    ensure_wrk,
    falcon_server,
    free_port,
    parse_ms,
    pinned,
    raw_server,
    wait_for,
)

READ_BYTES = 20 * 1024
UPLOAD_BYTES = 200 * 1024
PASSWORD = "benchmark password"
POSTGRES_ADMIN_URL = os.environ.get(
    "CHITRAM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CHITRAM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BOUNDARY = "chitrambenchboundary7d1f"

UPLOAD_LUA = r"""
-- POST /api/v1/images/upload, multipart, a JPEG that differs per request in two bytes of
-- its quantisation table.  Arguments: <jpeg path> <1-based offset of the two bytes> <token>
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local offset = tonumber(args[2])
  before = data:sub(1, offset - 1)
  after = data:sub(offset + 2)
  pre = "--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; " ..
        "filename=\"bench.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
  post = "\r\n--BOUNDARY--\r\n"
  headers = {
    ["Content-Type"] = "multipart/form-data; boundary=BOUNDARY",
    ["Authorization"] = "Bearer " .. args[3],
  }
  counter = (tonumber(tid) or 0) * 16000
end

function request()
  counter = counter + 1
  local a = 1 + (counter % 255)
  local b = 1 + (math.floor(counter / 255) % 255)
  local body = pre .. before .. string.char(a, b) .. after .. post
  return wrk.format("POST", "/api/v1/images/upload", headers, body)
end
""".replace("BOUNDARY", BOUNDARY)


# the raw ASGI baseline (its own process: python suite.py --raw-server PORT FILE) ------------


def jpeg_of_about(size: int, seed: int) -> bytes:
    """A noisy JPEG close to ``size`` bytes (noise compresses badly, so size tracks pixels)."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    side = 32
    while True:
        image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        if buffer.tell() >= size:
            return buffer.getvalue()
        side += max(2, side // 50)


def quantisation_offset(data: bytes) -> int:
    """0-based offset of the last two entries of the first 8-bit quantisation table."""
    pos = 2
    while pos < len(data):
        assert data[pos] == 0xFF, "not a JPEG marker"
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDB:
            assert data[pos + 4] >> 4 == 0, "16-bit quantisation table"
            return pos + 5 + 62
        pos += 2 + length
    raise ValueError("no DQT segment")


def check_variants(data: bytes, offset: int) -> None:
    """Two variants decode and differ (what the Lua script sends)."""
    from PIL import Image

    seen = set()
    for a, b in ((2, 1), (3, 1)):
        variant = data[:offset] + bytes([a, b]) + data[offset + 2 :]
        Image.open(io.BytesIO(variant)).load()
        seen.add(variant)
    assert len(seen) == 2


# servers ------------------------------------------------------------------------------------


def request_json(url: str, body: bytes, headers: dict[str, str]) -> Any:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def multipart(data: bytes, filename: str) -> tuple[bytes, str]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        "\r\nContent-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode(), (
        f"multipart/form-data; boundary={BOUNDARY}"
    )


def prepare(base: str, data: bytes) -> tuple[str, str]:
    """Register a user, upload ``data``; (bearer token, image id)."""
    session = request_json(
        f"{base}/api/v1/auth/register",
        json.dumps({"email": "bench@example.com", "password": PASSWORD}).encode(),
        {"Content-Type": "application/json"},
    )
    token = session["access_token"]
    body, content_type = multipart(data, "small.jpg")
    image = request_json(
        f"{base}/api/v1/images/upload",
        body,
        {"Content-Type": content_type, "Authorization": f"Bearer {token}"},
    )
    return token, image["id"]


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database for the run (``postgresql+asyncpg://`` URL), dropped afterwards."""
    import asyncpg

    name = f"chitram_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def drop_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


# wrk ----------------------------------------------------------------------------------------


def run_wrk(
    wrk: list[str],
    url: str,
    *,
    duration: int,
    threads: int,
    connections: int,
    script: list[str] | None = None,
) -> dict[str, float]:
    command = [*wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        command += ["-s", script[0], url, "--", *script[1:]]
    else:
        command.append(url)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = parse_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = parse_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
        # wrk's socket error counters by kind: connect, read, write, timeout.
        **{
            f"errors_{kind}": int(errors.group(i + 1)) if errors else 0
            for i, kind in enumerate(("connect", "read", "write", "timeout"))
        },
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def wait_idle(procs: list[subprocess.Popen[bytes]], timeout: float = 60.0) -> None:
    """Until the servers use under 5 % of a CPU (background thumbnails of an upload run done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(p.pid) for p in procs)
        time.sleep(0.5)
        if sum(cpu_seconds(p.pid) for p in procs) - before < 0.025:
            return


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# the suite ----------------------------------------------------------------------------------


def start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def chitram_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
    env.update(
        CHITRAM_DATA_DIR=str(data_dir),
        CHITRAM_UPLOAD_RATE_LIMIT="off",
        CHITRAM_AUTH_RATE_LIMIT="off",
        CHITRAM_UPLOADS_PER_USER="64",  # one user on 32 connections: the per-user cap off
        CHITRAM_WEB_UI="false",
        **extra,
    )
    return env


def server_stack(python: str) -> str:
    """What uvicorn will run ``chitram serve`` on with this interpreter."""
    probe = subprocess.run(
        [
            python,
            "-c",
            "from chitram_falcon.cli import server_stack; print(*server_stack())",
        ],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    if probe.returncode == 0:
        return probe.stdout.strip().replace(" ", " + ")
    found = subprocess.run(
        [python, "-c", "import uvloop, httptools"], capture_output=True, cwd=tempfile.gettempdir()
    )
    return "uvloop + httptools (auto)" if found.returncode == 0 else "asyncio + h11 (auto)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", choices=["embedded", "postgres"], default=None)
    parser.add_argument("--no-upload", action="store_true", help="skip the upload target (d)")
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="run chitram serve with CHITRAM_ACCESS_LOG=false (what the access line costs; "
        "not the installed default)",
    )
    parser.add_argument(
        "--chitram-python",
        default=sys.executable,
        help="the interpreter of the venv whose `chitram serve` is measured (default: this one)",
    )
    parser.add_argument("--server-cpu", type=int, default=1, help="taskset CPU of the servers")
    parser.add_argument("--wrk-cpu", type=int, default=0, help="taskset CPU of wrk")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="after measuring, record py-spy profiles of each chitram read target into DIR",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--raw-server", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--falcon-server", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.raw_server:
        raw_server(int(args.raw_server[0]), args.raw_server[1], loop="uvloop", http="httptools")
        return 0
    if args.falcon_server:
        falcon_server(int(args.falcon_server[0]), args.falcon_server[1])
        return 0

    few_cpus = (os.cpu_count() or 1) < 2
    server_pin = pinned(None if args.no_pin or few_cpus else args.server_cpu)
    wrk = [*pinned(None if args.no_pin or few_cpus else args.wrk_cpu), ensure_wrk()]
    chitram_python = args.chitram_python
    stack_name = server_stack(chitram_python)
    small = jpeg_of_about(READ_BYTES, seed=1)
    big = jpeg_of_about(UPLOAD_BYTES, seed=2)
    offset = quantisation_offset(big)
    check_variants(big, offset)
    configs = [c for c in ("embedded", "postgres") if args.only in (None, c)]
    if "embedded" in configs:
        configs.insert(1, "quiet")  # the embedded default with --quiet, beside it
    procs: list[subprocess.Popen[bytes]] = []
    servers: dict[str, subprocess.Popen[bytes]] = {}
    targets: dict[str, tuple[str, list[str] | None]] = {}
    owners: dict[str, subprocess.Popen[bytes]] = {}  # the server process of each target
    redis_prefix = f"chitram-bench-{uuid.uuid4().hex[:10]}:"
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="chitram-suite-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        (tmp / "small.jpg").write_bytes(small)
        (tmp / "big.jpg").write_bytes(big)
        (tmp / "upload.lua").write_text(UPLOAD_LUA)
        try:
            raw_port = free_port()
            raw = start(
                [
                    *server_pin,
                    *(sys.executable, __file__, "--raw-server", str(raw_port)),
                    str(tmp / "small.jpg"),
                ],
                tmp,
                dict(os.environ),
                tmp / "raw.log",
            )
            procs.append(raw)
            wait_for(f"http://127.0.0.1:{raw_port}/", raw)
            targets["a raw"] = (f"http://127.0.0.1:{raw_port}/", None)
            owners["a raw"] = raw
            falcon_port = free_port()
            bare = start(
                [
                    *server_pin,
                    *(sys.executable, __file__, "--falcon-server", str(falcon_port)),
                    str(tmp / "small.jpg"),
                ],
                tmp,
                dict(os.environ),
                tmp / "falcon.log",
            )
            procs.append(bare)
            wait_for(f"http://127.0.0.1:{falcon_port}/", bare)
            targets["f falcon"] = (f"http://127.0.0.1:{falcon_port}/x/file", None)
            owners["f falcon"] = bare
            for config in configs:
                data_dir = tmp / config
                quiet = {"CHITRAM_ACCESS_LOG": "false"} if args.no_access_log else {}
                if config in ("embedded", "quiet"):
                    env = chitram_env(data_dir, **quiet)
                else:
                    database_url = stack.enter_context(postgres_database())
                    env = chitram_env(
                        data_dir,
                        **quiet,
                        CHITRAM_DATABASE_URL=database_url,
                        CHITRAM_CACHE_URL=f"{REDIS_URL}?prefix={redis_prefix}",
                        CHITRAM_STORAGE_URL=(data_dir / "images").as_uri(),
                    )
                    subprocess.run(
                        [chitram_python, "-m", "chitram_falcon", "db", "upgrade"],
                        cwd=tmp,
                        env=env,
                        check=True,
                        capture_output=True,
                    )
                port = free_port()
                proc = start(
                    [
                        *server_pin,
                        *(chitram_python, "-m", "chitram_falcon", "serve"),
                        *("--port", str(port), "--workers", "1"),
                        *(["--quiet"] if config == "quiet" else []),
                    ],
                    tmp,
                    env,
                    tmp / f"{config}.log",
                )
                procs.append(proc)
                servers[config] = proc
                base = f"http://127.0.0.1:{port}"
                wait_for(f"{base}/health/ready", proc)
                token, image_id = prepare(base, small)
                with urllib.request.urlopen(f"{base}/api/v1/images/{image_id}/file") as resp:
                    assert resp.read() == small, "chitram served different bytes"
                with urllib.request.urlopen(f"{base}/api/v1/images/{image_id}/thumbnail") as resp:
                    assert resp.status == 200 and resp.read(), "no thumbnail"
                targets[f"b {config}"] = (f"{base}/api/v1/images/{image_id}/file", None)
                targets[f"c {config}"] = (f"{base}/api/v1/images/{image_id}", None)
                targets[f"e {config}"] = (f"{base}/api/v1/images/{image_id}/thumbnail", None)
                for kind in "bcde":
                    owners[f"{kind} {config}"] = proc
                if not args.no_upload:
                    targets[f"d {config}"] = (
                        f"{base}/api/v1/images/upload",
                        [str(tmp / "upload.lua"), str(tmp / "big.jpg"), str(offset + 1), token],
                    )

            # Reads first, uploads last: an upload run leaves thumbnails rendering behind it.
            targets = dict(sorted(targets.items(), key=lambda item: item[0].startswith("d ")))
            common = {"threads": args.threads, "connections": args.connections}
            for url, script in targets.values():
                wait_idle(procs)
                run_wrk(wrk, url, duration=args.warmup, script=script, **common)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for number in range(args.rounds):
                for name, (url, script) in targets.items():
                    print(f"round {number + 1}: {name} ...", file=sys.stderr, flush=True)
                    wait_idle(procs)
                    cpu_before = cpu_seconds(owners[name].pid)
                    result = run_wrk(wrk, url, duration=args.duration, script=script, **common)
                    spent = cpu_seconds(owners[name].pid) - cpu_before
                    result["cpu_us"] = spent / max(1.0, result["rps"] * args.duration) * 1e6
                    results[name].append(result)
            if args.profile is not None:
                profile(args, wrk, targets, servers)
        except BaseException:
            for log in sorted(tmp.glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}", file=sys.stderr)
            raise
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if "postgres" in configs:
                drop_redis_prefix(redis_prefix)

    report(args, results, len(small), len(big), stack_name, load_before, load_average())
    return 0


def profile(
    args: argparse.Namespace,
    wrk: list[str],
    targets: dict[str, tuple[str, list[str] | None]],
    servers: dict[str, subprocess.Popen[bytes]],
) -> None:
    """py-spy on the chitram server while wrk loads one read target: raw folded stacks."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out: Path = args.profile
    out.mkdir(parents=True, exist_ok=True)
    for name, (url, _script) in targets.items():
        kind, config = name.split(" ", 1)
        if kind not in {"b", "c", "e"}:
            continue
        pid = child_pid(servers[config].pid)
        path = out / f"{config}-{kind}.txt"
        recorder = subprocess.Popen(
            [
                *(spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "--nonblocking"),
                *("-d", str(args.duration), "-o", str(path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        run_wrk(
            wrk, url, duration=args.duration, threads=args.threads, connections=args.connections
        )
        recorder.wait(timeout=args.duration + 30)
        print(f"profile of {name}: {path}", file=sys.stderr)


def child_pid(pid: int) -> int:
    """The server process itself (taskset execs, so usually ``pid``)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        kids = children.read_text().split()
    except OSError:
        return pid
    return int(kids[0]) if kids else pid


LABELS = {
    "a": "(a) raw ASGI, 20 KB from memory",
    "b": "(b) GET /images/{id}/file, 20 KB",
    "c": "(c) GET /images/{id}",
    "d": "(d) POST /images/upload, 200 KB",
    "e": "(e) GET /images/{id}/thumbnail",
    "f": "(f) bare Falcon app, 20 KB from memory",
}
TARGETS = {"b": 0.75, "c": 0.80}
BACKENDS = {
    "raw": "-",
    "falcon": "-",
    "embedded": "SQLite+memory",
    "quiet": "SQLite+memory quiet",
    "postgres": "PostgreSQL+Redis",
}


def report(
    args: argparse.Namespace,
    results: dict[str, list[dict[str, float]]],
    small: int,
    big: int,
    stack_name: str,
    load_before: str,
    load_after: str,
) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    def ratio_to(name: str, base: str) -> float:
        """Median over rounds of the ratio within each round (drift hits both alike)."""
        pairs = zip(results[name], results[base], strict=True)
        return statistics.median(r["rps"] / b["rps"] for r, b in pairs)

    def cpu_ratio(name: str) -> float:
        """Median over rounds of raw ASGI's CPU per request over this target's, in one round."""
        pairs = zip(results[name], results["a raw"], strict=True)
        return statistics.median(b["cpu_us"] / r["cpu_us"] if r["cpu_us"] else 0 for r, b in pairs)

    print(
        f"\nwrk -t{args.threads} -c{args.connections}, median of {args.rounds} x {args.duration} s"
        f" per target; {os.cpu_count()} CPUs; read image {small} B, upload image {big} B;"
        f"\nraw ASGI on uvloop + httptools, chitram serve on {stack_name}"
        f" ({args.chitram_python}); load average before {load_before}, after {load_after}"
    )
    print(
        f"{'target':<36} {'backend':<18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'vs (a)':>7} {'vs emb.':>7} {'errors':>7} {'CPU µs':>7} {'CPU (a)':>7}  rounds (req/s)"
    )
    rows = []
    for name in results:
        kind, config = name.split(" ", 1)
        rps = median(name, "rps")
        errors = sum(r["errors"] + r["non2xx"] for r in results[name])
        ratio = ratio_to(name, "a raw")
        embedded = f"{kind} embedded"
        vs_embedded = (
            ratio_to(name, embedded) if config == "postgres" and embedded in results else None
        )
        shown = "" if vs_embedded is None else f"{vs_embedded:.0%}"
        goal = TARGETS.get(kind) if config == "embedded" else None
        verdict = "" if goal is None else (" ok" if ratio >= goal else f" < {goal:.0%}")
        backend = BACKENDS[config]
        flag = "!" if any(r["non2xx"] for r in results[name]) else ""
        each = " ".join(f"{r['rps']:.0f}" for r in results[name])
        print(
            f"{LABELS[kind]:<36} {backend:<18} {rps:>9.0f} {median(name, 'p50'):>8.2f} "
            f"{median(name, 'p99'):>8.2f} {ratio:>6.0%}{flag} {shown:>7} {errors:>7.0f}"
            f"{verdict:<7} {median(name, 'cpu_us'):>7.1f} {cpu_ratio(name):>7.0%}  {each}"
        )
        rows.append(
            {
                "target": kind,
                "backend": config,
                "rps": round(rps, 1),
                "rounds_rps": [round(r["rps"], 1) for r in results[name]],
                "p50_ms": round(median(name, "p50"), 3),
                "p99_ms": round(median(name, "p99"), 3),
                "ratio_to_raw": round(ratio, 4),
                "ratio_to_embedded": None if vs_embedded is None else round(vs_embedded, 4),
                "errors": errors,
                "cpu_us_per_request": round(median(name, "cpu_us"), 2),
                "cpu_ratio_to_raw": round(cpu_ratio(name), 4),
            }
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "stack": stack_name,
                    "chitram_python": args.chitram_python,
                    "load_before": load_before,
                    "load_after": load_after,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    sys.exit(main())
