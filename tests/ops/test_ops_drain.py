"""SIGTERM of ``chitram serve`` under load, over raw sockets: readiness turns 503 first while
requests are still served, then the server stops accepting, finishes what is in flight and exits,
and no request is ever answered with a connection reset: each one is either answered or refused
at connect, before a byte of it was sent."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

from opskit import Serve, clean_env

WAIT = 60.0
"""How long a socket waits for the server at most: a bound that makes a hung server fail the
test, not a measurement."""

DRAIN = 3.0


def head(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def read_answer(sock: socket.socket, buffered: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One whole answer (status, headers, body by Content-Length); raises ``ConnectionError``
    when the connection ends before it."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole head: {bytes(buffered)!r}")
        buffered += chunk
    top, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the whole body")
        body += chunk
    buffered[:] = body[length:]
    return status, headers, bytes(body[:length])


class Client(threading.Thread):
    """Requests /health/ready and /health/live in turn until told to stop: on a new connection
    each time, or on one kept alive until the server's answer closes it."""

    def __init__(self, port: int, keep_alive: bool, sigterm_sent: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.keep_alive = keep_alive
        self.sigterm_sent = sigterm_sent
        self.stop = threading.Event()
        self.events: list[tuple[str, str, int]] = []  # (what, path, status); in order
        self.failures: list[str] = []

    def count(self, what: str) -> int:
        return sum(1 for event in self.events if event[0] == what)

    def run(self) -> None:
        sock: socket.socket | None = None
        buffered = bytearray()
        serial = 0
        while not self.stop.is_set():
            path = "/health/ready" if serial % 2 == 0 else "/health/live"
            serial += 1
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
                except ConnectionRefusedError:
                    if not self.sigterm_sent.is_set():
                        self.failures.append("refused before SIGTERM")
                    self.events.append(("refused", path, 0))
                    time.sleep(0.05)
                    continue
                buffered = bytearray()
            try:
                sock.sendall(head(path))
                status, headers, _ = read_answer(sock, buffered)
            except OSError as exc:  # a reset, a broken pipe, a close before the answer
                self.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                sock.close()
                sock = None
                continue
            self.events.append(("answered", path, status))
            if not self.keep_alive or headers.get("connection", "").lower() == "close":
                sock.close()
                sock = None
        if sock is not None:
            sock.close()


def test_sigterm_drains_then_stops_without_resetting_a_request(tmp_path: Path) -> None:
    env = clean_env(
        CHITRAM_SHUTDOWN_DRAIN=str(DRAIN),
        CHITRAM_SHUTDOWN_GRACE="30",
        CHITRAM_BODY_IDLE_TIMEOUT="120",
    )
    serve = Serve(tmp_path, env)
    clients: list[Client] = []
    try:
        serve.wait_ready()
        sigterm_sent = threading.Event()
        clients = [
            Client(serve.port, keep_alive=n % 2 == 0, sigterm_sent=sigterm_sent) for n in range(4)
        ]
        for client in clients:
            client.start()
        deadline = time.monotonic() + WAIT
        while any(c.count("answered") < 10 for c in clients) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(c.count("answered") >= 10 for c in clients), [c.failures for c in clients]

        # A request in flight across the whole shutdown: its head and half its body now, the
        # rest once the server has stopped accepting.
        body = b'{"email": "nobody@example.com", "password": "not the password"}'
        slow = socket.create_connection(("127.0.0.1", serve.port), timeout=WAIT)
        slow.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.5)  # the head reaches the server before the signal (not a timing assertion)

        sigterm_sent.set()
        os.kill(serve.process.pid, signal.SIGTERM)
        # Every client goes on until it is refused: the server has stopped accepting.
        while any(c.count("refused") == 0 for c in clients) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(c.count("refused") for c in clients), "the server never stopped accepting"
        slow.sendall(body[10:])
        status, _, _ = read_answer(slow, bytearray())
        slow.close()
        assert status == 401  # answered (the wrong password), after the listener closed
        code = serve.process.wait(WAIT)
        assert code in (0, -signal.SIGTERM), serve.output()
    finally:
        for client in clients:
            client.stop.set()
        for client in clients:
            client.join(WAIT)
        serve.stop()

    assert [f for c in clients for f in c.failures] == []
    statuses: Counter[tuple[str, int]] = Counter()
    served_while_draining = 0
    for client in clients:
        seen_draining = False
        for what, path, status in client.events:
            if what != "answered":
                continue
            statuses[(path, status)] += 1
            if path == "/health/ready" and status == 503:
                seen_draining = True
            elif seen_draining:
                # Readiness turned 503 first, and requests were still served after that.
                assert (path, status) in (("/health/live", 200), ("/health/ready", 503))
                served_while_draining += path == "/health/live"
    assert statuses[("/health/ready", 503)] > 0, statuses
    assert served_while_draining > 0, statuses
    assert "draining for 3 s" in serve.output()
