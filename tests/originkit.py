"""A remote server for upload-by-URL and moderation tests: plain HTTP on a 127.0.0.x address,
in a thread, counting every request that reached it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs

Handler = Callable[[BaseHTTPRequestHandler], None]


@attrs.define
class Origin:
    host: str
    port: int
    routes: dict[str, Handler]
    hits: list[str] = attrs.field(factory=list)
    bodies: list[bytes] = attrs.field(factory=list)

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"


@contextmanager
def serve(routes: dict[str, Handler], host: str = "127.0.0.1", port: int = 0) -> Iterator[Origin]:
    """Serve ``routes`` (path -> handler) on ``host`` at ``port`` (0: a free one); 404
    elsewhere. ``host`` may be an IPv6 address (``::1``)."""
    origin = Origin(host, 0, routes)

    class _Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _any(self) -> None:
            origin.hits.append(self.path)
            length = int(self.headers.get("content-length") or 0)
            if length:
                origin.bodies.append(self.rfile.read(length))
            handler = origin.routes.get(self.path.split("?", 1)[0])
            if handler is None:
                send(self, 404, b"not here", "text/plain")
            else:
                handler(self)

        do_GET = _any
        do_POST = _any

    class _Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = _Server((host, port), _Handler)
    server.daemon_threads = True
    origin.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def body(data: bytes, content_type: str = "image/jpeg", status: int = 200) -> Handler:
    return lambda h: send(h, status, data, content_type)


def redirect(location: str, status: int = 302) -> Handler:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handler


def declared(length: int, sent: bytes) -> Handler:
    """Announces ``length`` bytes, sends ``sent`` and closes."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(length))
        h.end_headers()
        with suppress(OSError):
            h.wfile.write(sent)
        h.close_connection = True

    return handler


def endless(prefix: bytes, chunk: int = 64 * 1024) -> Handler:
    """No length; ``prefix`` then zeros until the client goes away."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.end_headers()
        h.close_connection = True
        try:
            h.wfile.write(prefix)
            for _ in range(10_000):
                h.wfile.write(bytes(chunk))
        except OSError:
            pass

    return handler


def declared_then_wait(length: int, release: threading.Event) -> Handler:
    """Announces ``length`` bytes and sends none until ``release`` is set (or 120 s pass): a
    client that waited for the body would get nothing."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(length))
        h.end_headers()
        h.wfile.flush()
        h.close_connection = True
        release.wait(120)

    return handler


@attrs.define
class Drip:
    """A handler: no length, ``prefix``, then one byte every ``every`` seconds, ``count``
    times. ``cut`` is set when the client hung up before the last byte."""

    prefix: bytes
    every: float = 0.2
    count: int = 200
    cut: threading.Event = attrs.field(factory=threading.Event)
    sent: int = 0

    def __call__(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.end_headers()
        h.close_connection = True
        try:
            h.wfile.write(self.prefix)
            h.wfile.flush()
            for _ in range(self.count):
                time.sleep(self.every)
                h.wfile.write(b"\0")
                h.wfile.flush()
                self.sent += 1
        except OSError:
            self.cut.set()


def drip(prefix: bytes, every: float = 0.2, count: int = 200) -> Handler:
    """No length; ``prefix``, then one byte every ``every`` seconds."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.end_headers()
        h.close_connection = True
        try:
            h.wfile.write(prefix)
            h.wfile.flush()
            for _ in range(count):
                time.sleep(every)
                h.wfile.write(b"\0")
                h.wfile.flush()
        except OSError:
            pass

    return handler


def verdicts(decide: Callable[[int], dict[str, object] | None]) -> Handler:
    """A moderation service: the n-th request (from 0) gets ``decide(n)`` as JSON, or 503 for
    None."""
    count = [0]
    lock = threading.Lock()

    def handler(h: BaseHTTPRequestHandler) -> None:
        with lock:
            n = count[0]
            count[0] += 1
        answer = decide(n)
        if answer is None:
            send(h, 503, b"down", "text/plain")
        else:
            send(h, 200, json.dumps(answer).encode(), "application/json")

    return handler
