"""What the access line costs on the request path, and what the writer spends per line.

Method
------
* ``chitram_falcon.observed.serve`` wraps a trivial ASGI app (one start and one body message,
  no-op send) with a prepared scope, in a loop on one event loop: no server, no sockets.
* ``off``: the ``chitram_falcon.access`` logger above INFO (``--quiet``); ``text`` and ``json``:
  at INFO with that format, so each request queues its line, and (text only) every 256th
  formats the last 256 for the writer. The writer's thread is not started; what is queued is
  written between rounds, outside the timed part. The request-path cost of the access line is
  ``text - off`` (``json - off``) in the same run.
* ``writer``: the CPU per line of ``AccessWriter.flush`` writing the lines of as many requests
  to /dev/null, with each format (the work done off the request path: writing, and for JSON
  formatting too).
* CPU time (``time.process_time``), minimum over ``--rounds`` interleaved rounds of
  ``--requests`` calls (other load only ever adds time); the median is printed too.

Run:  python benchmarks/access_line.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from typing import Any

from chitram_core import logs
from chitram_falcon import access, observed

NULL = open(os.devnull, "w")  # noqa: SIM115 - for the whole run
SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/api/v1/images/abc/file",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk")],
    "client": ("127.0.0.1", 50000),
    observed.ROUTE_KEY: "/api/v1/images/{image_id}/file",
}
BODY = {"type": "http.response.body", "body": b"x" * 100}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send(BODY)


async def noop(message: dict[str, Any]) -> None:
    return None


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def loop(n: int) -> float:
    began = time.process_time()
    for _ in range(n):
        await observed.serve(app, dict(SCOPE), receive, noop)
    return time.process_time() - began


def configure(fmt: str) -> None:
    logs.configure(fmt, "INFO")
    logging.getLogger().handlers[0].setStream(NULL)  # type: ignore[attr-defined]


def writer_cost(n: int, fmt: str) -> float:
    configure(fmt)
    for _ in range(n):
        access.WRITER.add(
            access.entry_of(time.time(), "r" * 32, "GET", "/x/{id}", 200, 100, 0.001, SCOPE, ())
        )
    began = time.process_time()
    access.WRITER.flush()
    return time.process_time() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    logger = logging.getLogger("chitram_falcon.access")
    figures: dict[str, list[float]] = {"off": [], "text": [], "json": []}
    configure("text")
    asyncio.run(loop(2000))
    for _ in range(args.rounds):
        for mode in figures:
            configure("json" if mode == "json" else "text")
            logger.setLevel(logging.WARNING if mode == "off" else logging.INFO)
            seconds = asyncio.run(loop(args.requests))
            figures[mode].append(seconds / args.requests * 1e6)
            access.WRITER.flush()
    logger.setLevel(logging.NOTSET)
    for mode, values in figures.items():
        print(f"{mode:8} {min(values):6.2f} µs/request (median {statistics.median(values):.2f})")
    for fmt in ("text", "json"):
        cost = min(figures[fmt]) - min(figures["off"])
        print(f"access line on the request path, {fmt}: {cost:.2f} µs")
    for fmt in ("text", "json"):
        values = [writer_cost(args.requests, fmt) / args.requests * 1e6 for _ in range(3)]
        print(f"writer, {fmt}: {min(values):.2f} µs/line of CPU off the request path")


if __name__ == "__main__":
    main()
