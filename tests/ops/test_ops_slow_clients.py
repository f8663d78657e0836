"""Slow clients against ``chitram serve`` over raw sockets: request heads and bodies are
bounded in time, connections in number; SIGTERM leaves no metrics directory behind."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from netkit import free_port
from opskit import PASSWORD, Serve, clean_env, jpeg_bytes

HEAD = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
WAIT = 60.0
"""How long a socket waits for the server at most: a bound that makes a server that never
closes fail the test, not a measurement (the server's timeouts here are 1 s)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    env = clean_env(
        CHITRAM_HEADER_TIMEOUT="1",
        CHITRAM_BODY_IDLE_TIMEOUT="1",
        CHITRAM_MAX_CONNECTIONS="6",
    )
    serve = Serve(tmp_path_factory.mktemp("slow"), env)
    try:
        serve.wait_ready()
        yield serve
    finally:
        serve.stop()


def connect(server: Serve) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    return sock


def read_answer(sock: socket.socket, buffered: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One whole answer (status, headers, body by Content-Length) from the socket; bytes after it
    stay in ``buffered``."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {bytes(buffered)!r}"
        buffered += chunk
    head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed before the whole body"
        body += chunk
    buffered[:] = body[length:]
    return status, headers, bytes(body[:length])


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes (end of stream or reset) within ``WAIT`` seconds."""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_half_sent_head_is_closed(server: Serve) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert closed_by_server(sock)


def test_a_kept_alive_connection_must_send_its_next_head_in_time(server: Serve) -> None:
    with connect(server) as sock:
        buffered = bytearray()
        for _ in range(2):  # answered while heads come whole
            sock.sendall(HEAD)
            status, _, body = read_answer(sock, buffered)
            assert status == 200 and b"alive" in body
        sock.sendall(b"GET /health/live HTTP/1.1\r\n")  # the next head, never finished
        assert closed_by_server(sock)


def test_an_idle_kept_alive_connection_is_closed(server: Serve) -> None:
    # The deadline for the next head is also the keep-alive timeout: a connection that sends
    # nothing after its answer is closed, as by uvicorn's own keep-alive timer.
    with connect(server) as sock:
        buffered = bytearray()
        sock.sendall(HEAD)
        status, _, _ = read_answer(sock, buffered)
        assert status == 200
        assert closed_by_server(sock)


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/auth/refresh"]
)
def test_a_stalled_body_is_408_and_closed(server: Serve, path: str) -> None:
    with connect(server) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n".encode()
            + b'{"email": "a'
        )
        buffered = bytearray()
        status, _, body = read_answer(sock, buffered)
        assert status == 408, body
        assert b"REQUEST_TIMEOUT" in body
        assert closed_by_server(sock)


def test_at_the_connection_cap_a_prompt_client_is_answered_and_the_oldest_idle_closed(
    server: Serve,
) -> None:
    idle = [connect(server) for _ in range(6)]
    try:
        for sock in idle:
            sock.sendall(b"GET /health/live HTTP/1.1\r\n")  # heads never finished
        with connect(server) as sock:
            sock.sendall(HEAD)
            status, _, _ = read_answer(sock, bytearray())
            assert status == 200
        assert closed_by_server(idle[0])
    finally:
        for sock in idle:
            sock.close()


def test_pipelined_requests_are_answered_whole_and_in_order(server: Serve) -> None:
    """Several requests written at once on one connection: warm reads (answered without waiting
    for anything), a refused login (its body read first) and health, each answered whole, in
    the order sent."""
    api = f"{server.url}/api/v1"
    email = "pipeline@example.com"
    token = httpx.post(f"{api}/auth/register", json={"email": email, "password": PASSWORD}).json()[
        "access_token"
    ]
    data = jpeg_bytes(80, 60)
    image = httpx.post(
        f"{api}/images/upload",
        files={"file": ("p.jpg", data, "image/jpeg")},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    path = f"/api/v1/images/{image['id']}"
    assert httpx.get(f"{server.url}{path}/file").content == data  # warm: prepared, in memory
    login = b'{"email": "pipeline@example.com", "password": "not the password"}'
    requests = [
        f"GET {path}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(login)).encode()
        + b"\r\n\r\n"
        + login,
        HEAD,
        f"HEAD {path}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
        f"GET {path}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
    ]
    with connect(server) as sock:
        sock.sendall(b"".join(requests))
        buffered = bytearray()
        answers = [read_answer(sock, buffered) for _ in range(4)]
        # HEAD: a Content-Length but no body; read the last GET after it by hand.
        while b"\r\n\r\n" not in buffered:
            buffered += sock.recv(65536)
        head, _, _ = bytes(buffered).partition(b"\r\n\r\n")
        buffered[:] = buffered[len(head) + 4 :]
        last = read_answer(sock, buffered)
    assert [status for status, _, _ in answers] == [200, 200, 401, 200], answers
    assert answers[0][2] == data
    assert answers[1][2].startswith(b"{") and image["id"].encode() in answers[1][2]
    assert b"alive" in answers[3][2]
    assert head.startswith(b"HTTP/1.1 200"), head
    assert last[0] == 200 and last[2] == data
    assert len({headers["x-request-id"] for _, headers, _ in [*answers, last]}) == 5


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_leaves_no_metrics_directory(tmp_path: Path, workers: str) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = clean_env(CHITRAM_METRICS_ADDRESS=f"127.0.0.1:{free_port()}", TMPDIR=str(temp))
    serve = Serve(tmp_path, env, "--workers", workers)
    try:
        serve.wait_ready()
        assert [p.name for p in temp.iterdir() if p.name.startswith("chitram-metrics-")]
    finally:
        serve.stop()  # SIGTERM to the process group, as a service manager sends
    assert not [p.name for p in temp.iterdir() if p.name.startswith("chitram-metrics-")], (
        serve.output()
    )
    assert os.path.isdir(temp)
