"""Per-request CPU cost of the read path, in process: the ASGI app called directly, no server.

Method
------
* One process, the asyncio loop, no sockets and no HTTP parser: each request is
  ``await app(scope, receive, send)`` with a fixed scope (``GET``, a Host and a User-Agent
  header, no Authorization), ``send`` discarding the messages. What is left is the cost of the
  application itself: the part of a request our code (and Falcon) adds to what the server
  stack costs anyway.
* Apps, all serving the same 20 KB JPEG:
  - ``raw``: a bare ASGI callable (two ``send`` calls), the floor;
  - ``falcon``: a bare Falcon app, one sink setting ``resp.data``;
  - ``chitram``: ``create_app`` over an embedded Chitram (SQLite + local files + in-process
    cache, in a temporary directory): ``/file``, metadata, ``/thumbnail`` and a 304;
  - ``+ middleware``: the same app with one Falcon middleware that does what a request-id /
    access-log / metrics middleware does at the least (read or make an ``X-Request-ID``, set
    it on the response, time the request and count it by route and status), to show what such
    a middleware costs against the remaining budget.
* Every app gets a warm-up, then ``--rounds`` runs of ``--requests`` requests each, interleaved;
  the figure is the median microseconds per request. The machine is shared: compare rows of
  one run, not runs.

Run:  python benchmarks/asgi_cost.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
from suite import jpeg_of_about

from chitram_core import Chitram, Settings
from chitram_falcon import create_app

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class RequestIdMiddleware:
    """The least a request-id / access-log / metrics middleware does per request."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str | None, int]] = Counter()
        self.seconds = 0.0

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.request_id = req.get_header("X-Request-ID") or uuid.uuid4().hex
        req.context.started = time.perf_counter()

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        resp.set_header("X-Request-ID", req.context.request_id)
        self.seconds += time.perf_counter() - req.context.started
        self.counts[(req.method, req.uri_template, resp.status_code)] += 1


def scope_for(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), *headers],
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def run(app: App, path: str, n: int, headers: list[tuple[bytes, bytes]]) -> float:
    """Microseconds per request over ``n`` requests; every answer must be 200 or 304."""
    statuses: set[int] = set()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    scope = scope_for(path, headers)
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - started
    if not statuses <= {200, 304}:
        raise SystemExit(f"{path} answered {sorted(statuses)}")
    return elapsed / n * 1e6


async def main_async(args: argparse.Namespace) -> None:
    body = jpeg_of_about(20 * 1024, seed=1)
    length = str(len(body)).encode()

    async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"image/jpeg"), (b"content-length", length)],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def sink(req: falcon.asgi.Request, resp: falcon.asgi.Response, rest: str) -> None:
        resp.content_type = "image/jpeg"
        resp.data = body

    bare = falcon.asgi.App()
    bare.add_sink(sink, "/(?P<rest>.*)")

    with tempfile.TemporaryDirectory(prefix="chitram-asgi-cost-") as tmp:
        settings = Settings(
            data_dir=Path(tmp), upload_rate_limit=None, auth_rate_limit=None, web_ui=False
        )
        async with Chitram(settings, background=False) as chitram:
            image = await chitram.images.upload(body, filename="bench.jpg")
            app = create_app(chitram)
            with_mw = create_app(chitram)
            with_mw.add_middleware(RequestIdMiddleware())
            base = f"/api/v1/images/{image.id}"
            etag = [(b"if-none-match", image.etag.encode())]
            cases: list[tuple[str, App, str, list[tuple[bytes, bytes]]]] = [
                ("raw ASGI", raw, "/", []),
                ("bare Falcon", bare, "/x/file", []),
                ("GET /file", app, f"{base}/file", []),
                ("GET metadata", app, base, []),
                ("GET /thumbnail", app, f"{base}/thumbnail", []),
                ("GET /file, If-None-Match (304)", app, f"{base}/file", etag),
                ("GET /file + middleware", with_mw, f"{base}/file", []),
                ("GET metadata + middleware", with_mw, base, []),
            ]
            for _, target, path, headers in cases:
                await run(target, path, 500, headers)
            results: dict[str, list[float]] = {name: [] for name, *_ in cases}
            for _ in range(args.rounds):
                for name, target, path, headers in cases:
                    results[name].append(await run(target, path, args.requests, headers))
    falcon_us = statistics.median(results["bare Falcon"])
    print(f"median of {args.rounds} x {args.requests} requests, us per request, in process")
    print(f"{'app':<34} {'us/req':>8} {'over bare Falcon':>17}")
    for name, values in results.items():
        us = statistics.median(values)
        over = "" if name in {"raw ASGI", "bare Falcon"} else f"{us - falcon_us:+.1f}"
        print(f"{name:<34} {us:>8.1f} {over:>17}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main_async(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
