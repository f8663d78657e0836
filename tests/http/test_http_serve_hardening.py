"""``chitram serve`` in an empty folder: a private data dir, a kept secret, no token in the log."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest
from httpkit import PASSWORD, png_bytes
from netkit import free_port

from chitram_core.settings import DEFAULT_JWT_SECRET


@contextmanager
def serving(cwd: Path, log: Path, **extra: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
    env.update(extra)
    port = free_port()
    with log.open("a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chitram_falcon", "serve", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health/live", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not come up:\n{log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_serve_keeps_a_private_secret_and_never_logs_a_delete_token(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    work = tmp_path / "empty"
    work.mkdir()
    settings = {
        "CHITRAM_UPLOAD_RATE_LIMIT": "off",
        "CHITRAM_AUTH_RATE_LIMIT": "off",
        "CHITRAM_ALLOW_ANONYMOUS_UPLOADS": "true",
    }
    with serving(work, log, **settings) as base:
        data = work / "chitram-data"
        assert data.stat().st_mode & 0o777 == 0o700
        assert (data / "secret").stat().st_mode & 0o777 == 0o600
        assert (data / "chitram.db").stat().st_mode & 0o777 == 0o600
        reg = httpx.post(
            f"{base}/api/v1/auth/register", json={"email": "a@example.com", "password": PASSWORD}
        )
        assert reg.status_code == 201 and reg.headers["X-Content-Type-Options"] == "nosniff"
        assert "server" not in reg.headers  # the stack is not named to clients
        token = reg.json()["access_token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        forged = jwt.encode(claims, DEFAULT_JWT_SECRET, algorithm="HS256")
        me = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
        assert me.status_code == 401
        deep = "[" * 10_000 + "]" * 10_000
        resp = httpx.post(
            f"{base}/api/v1/auth/login", content=deep, headers={"Content-Type": "application/json"}
        )
        assert resp.status_code == 422
        upload = httpx.post(
            f"{base}/api/v1/images/upload", files={"file": ("a.png", png_bytes(), "image/png")}
        )
        assert upload.status_code == 201, upload.text
        image = upload.json()
        gone = httpx.delete(
            f"{base}/api/v1/images/{image['id']}", params={"delete_token": image["delete_token"]}
        )
        assert gone.status_code == 204
    text = log.read_text()
    # The access line names the route template, never the query (ops' access log replaced
    # uvicorn's, whose query string the hardening filter redacted).
    assert "DELETE /api/v1/images/{image_id} 204" in text
    assert image["delete_token"] not in text
    assert "RecursionError" not in text and "Traceback" not in text
    with serving(work, log, **settings) as base:  # restarted: the kept secret still signs
        me = httpx.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200


def _read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, dict[str, str]]:
    """One HTTP/1.1 response with a Content-Length from ``sock`` (what follows stays in
    ``buffer``): its status line and headers (lower-cased names)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection; got {bytes(buffer)!r}"
        buffer += chunk
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    end = len(head) + 4 + int(headers["content-length"])
    while len(buffer) < end:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-response"
        buffer += chunk
    del buffer[:end]
    return status.encode(), headers


@pytest.mark.slow
def test_a_full_upload_queue_answers_503_from_the_headers_and_keeps_the_connection(
    tmp_path: Path,
) -> None:
    # One slot and no queue. An upload holds the slot while it waits for SQLite's write lock,
    # which the test holds. A second upload sends only its headers: it is answered 503 with
    # Retry-After (after a short wait for room) without its body; the client then sends the
    # body anyway, and the connection serves its next request (no reset, nothing left over).
    log = tmp_path / "server.log"
    settings = {
        "CHITRAM_UPLOAD_RATE_LIMIT": "off",
        "CHITRAM_AUTH_RATE_LIMIT": "off",
        "CHITRAM_UPLOAD_CONCURRENCY": "1",
        "CHITRAM_UPLOAD_QUEUE": "0",
    }
    with serving(tmp_path, log, **settings) as base:
        reg = httpx.post(
            f"{base}/api/v1/auth/register", json={"email": "q@example.com", "password": PASSWORD}
        )
        token = reg.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        lock = sqlite3.connect(tmp_path / "chitram-data" / "chitram.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        first: list[httpx.Response] = []
        holder = threading.Thread(
            target=lambda: first.append(
                httpx.post(
                    f"{base}/api/v1/images/upload",
                    files={"file": ("a.png", png_bytes(), "image/png")},
                    headers=auth,
                    timeout=60,
                )
            )
        )
        holder.start()
        try:
            deadline = time.monotonic() + 20
            while httpx.get(f"{base}/health").json()["upload_concurrency"]["in_use"] != 1:
                assert time.monotonic() < deadline, "the first upload never took its slot"
                time.sleep(0.05)
            body = (
                b'--B\r\nContent-Disposition: form-data; name="file"; filename="b.png"\r\n'
                b"Content-Type: image/png\r\n\r\n" + os.urandom(160 * 1024) + b"\r\n--B--\r\n"
            )
            head = (
                f"POST /api/v1/images/upload HTTP/1.1\r\nHost: t\r\n"
                f"Authorization: Bearer {token}\r\n"
                f"Content-Type: multipart/form-data; boundary=B\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            port = int(base.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                buffer = bytearray()
                started = time.monotonic()
                sock.sendall(head)  # no body yet
                status, headers = _read_response(sock, buffer)
                assert status.startswith(b"HTTP/1.1 503"), status
                assert headers["retry-after"] == "1"
                assert headers.get("connection", "").lower() != "close"
                assert time.monotonic() - started < 5
                sock.sendall(body + b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
                status, _ = _read_response(sock, buffer)
                assert status.startswith(b"HTTP/1.1 200"), status
                assert not buffer
        finally:
            lock.execute("ROLLBACK")
            lock.close()
            holder.join(60)
        assert first and first[0].status_code == 201, first
