"""``chitram serve`` in an empty folder: a private data dir, a kept secret, no token in the log."""

from __future__ import annotations

import os
import subprocess
import sys
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
