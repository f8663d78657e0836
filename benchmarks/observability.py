"""What per-request observation (request id + access line + metrics) costs.

Method
------
* One in-process Chitram on the embedded default (SQLite + local files, in-process cache) in a
  fresh temporary data directory; one user uploads a 6 KB PNG. The measured requests are
  ``GET /api/v1/images/{id}/file`` (the hot read path: metadata from the cache, bytes from the
  small-object cache) and ``GET /health/live`` (almost no work: the wrapper's share is largest).
* Each request is one call of the ASGI app with a prepared scope and no-op receive/send, in a
  loop on one event loop: no server, no sockets, so the difference between modes is the
  observation code and nothing else.
* Modes, each in its own process (prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` at
  import):
  - ``bare``: Falcon's ``App.__call__`` directly: the app as it was before observation;
  - ``before``: ``bare`` plus the line uvicorn's access log wrote per request before this
    change (same call and formatter as uvicorn's protocol, colours off, to a file): what
    ``chitram serve`` cost by default until now;
  - ``quiet``: the observed app, access log off (``--quiet``), no metrics;
  - ``text``: access log on, text lines to a file (what ``chitram serve`` writes by default);
  - ``log``: access log on, JSON lines to a file;
  - ``metrics``: ``log`` + Prometheus metrics in one process;
  - ``multiproc``: ``metrics`` in multiprocess mode (what ``chitram serve`` with
    ``CHITRAM_METRICS_ADDRESS`` does, whatever ``--workers``).
* Time is this process's CPU time (``time.process_time``), not wall time: on a machine
  shared with other work, time spent waiting for a core is not the code's cost. Note that the
  app's few worker-thread hops (none on these two routes when warm) would count too.
* ``--rounds`` interleaved rounds (bare, quiet, log, ..., bare, quiet, ...) of ``--requests``
  calls per route after a warm-up. The figure is the *lowest* microseconds per request over
  rounds: on a shared machine other load only ever adds time, so the minimum is the closest to
  the code's own cost (the median is printed too). The extra cost is the difference to
  ``bare`` in the same run.

Run:  python benchmarks/observability.py [--requests 5000] [--rounds 3]
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODES = ("bare", "before", "quiet", "text", "log", "metrics", "multiproc")


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _measure(mode: str, requests: int, rounds: int, log_path: str) -> dict[str, list[float]]:
    import logging

    import falcon.asgi
    from PIL import Image as PILImage

    from chitram_core import Chitram, Settings, logs
    from chitram_core.observe import Observer
    from chitram_falcon import create_app

    fmt = "text" if mode == "text" else "json"
    logs.configure(fmt, "WARNING" if mode in {"bare", "before", "quiet"} else "INFO")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(log_path, "a"))  # noqa: SIM115, ASYNC230 - set up before measuring
    uvicorn_access = logging.getLogger("bench.uvicorn.access")
    if mode == "before":
        from uvicorn.logging import AccessFormatter

        own = logging.StreamHandler(open(log_path + ".uvicorn", "a"))  # noqa: SIM115, ASYNC230
        own.setFormatter(
            AccessFormatter(
                '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                use_colors=False,
            )
        )
        uvicorn_access.addHandler(own)
        uvicorn_access.setLevel(logging.INFO)
        uvicorn_access.propagate = False
    observer = Observer()
    if mode in {"metrics", "multiproc"}:
        from chitram_core import metrics

        observer = metrics.observer()
    data_dir = Path(tempfile.mkdtemp(prefix="chitram-bench-obs-"))
    settings = Settings(data_dir=data_dir, upload_rate_limit=None, web_ui=False)
    async with Chitram(settings, background=False, observer=observer) as chitram:
        app = create_app(chitram)
        buffer = io.BytesIO()
        PILImage.new("RGB", (64, 64), "red").save(buffer, "PNG")
        image = await chitram.images.upload(buffer.getvalue(), filename="b.png")

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def before(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await falcon.asgi.App.__call__(app, scope, receive, send)
            uvicorn_access.info(
                '%s - "%s %s HTTP/%s" %d',
                "127.0.0.1:50000",
                scope["method"],
                scope["path"],
                scope["http_version"],
                statuses[-1],
            )

        if mode == "bare":
            call: Any = lambda s, r, w: falcon.asgi.App.__call__(app, s, r, w)  # noqa: E731
        elif mode == "before":
            call = before
        else:
            call = app
        routes = {
            "file": _scope(f"/api/v1/images/{image.id}/file"),
            "live": _scope("/health/live"),
        }
        results: dict[str, list[float]] = {name: [] for name in routes}
        for scope in routes.values():
            for _ in range(200):  # warm-up
                await call(dict(scope), receive, send)
        for _ in range(rounds):
            for name, scope in routes.items():
                started = time.process_time()
                for _ in range(requests):
                    await call(dict(scope), receive, send)
                results[name].append((time.process_time() - started) / requests * 1e6)
        if any(status != 200 for status in statuses):
            raise SystemExit(f"{mode}: non-200 answers: {sorted(set(statuses))}")
    return results


def _child(mode: str, requests: int, rounds: int) -> None:
    import anyio

    with tempfile.TemporaryDirectory() as tmp:
        results = anyio.run(_measure, mode, requests, rounds, os.path.join(tmp, "access.log"))
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.requests, 1)
        return
    per_mode: dict[str, dict[str, list[float]]] = {m: {"file": [], "live": []} for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            with tempfile.TemporaryDirectory() as mp:
                if mode == "multiproc":
                    env["PROMETHEUS_MULTIPROC_DIR"] = mp
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, "--requests", str(args.requests)],
                    env=env,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            for route, values in json.loads(out.strip().splitlines()[-1]).items():
                per_mode[mode][route].extend(values)
    summary: dict[str, dict[str, float]] = {}
    print(f"{'mode':<10} {'file us/req':>12} {'+us':>7} {'live us/req':>12} {'+us':>7}  (median)")
    for mode in MODES:
        row = {route: min(v) for route, v in per_mode[mode].items()}
        base = {route: min(v) for route, v in per_mode["bare"].items()}
        med = {route: statistics.median(v) for route, v in per_mode[mode].items()}
        summary[mode] = row
        print(
            f"{mode:<10} {row['file']:>12.1f} {row['file'] - base['file']:>+7.1f}"
            f" {row['live']:>12.1f} {row['live'] - base['live']:>+7.1f}"
            f"  ({med['file']:.1f} / {med['live']:.1f})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"min_us": summary, "raw": per_mode}, indent=2))


if __name__ == "__main__":
    main()
