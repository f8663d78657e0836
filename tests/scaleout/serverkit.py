"""Real ``chitram serve`` processes for the scale-out tests, and what the tests check with.

Each process logs to its own file; the conftest attaches every log to a failing test's report
and kills whatever is still running when the test ends.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import httpx
from netkit import free_port
from PIL import Image as PILImage

PASSWORD = "correct horse battery"
READY_TIMEOUT = 60.0


def chitram(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a one-shot ``chitram`` command (``db upgrade``, ``sweep``); raise with its output."""
    result = subprocess.run(
        [sys.executable, "-m", "chitram_falcon", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"chitram {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


@attrs.define
class Server:
    """One ``python -m chitram_falcon serve`` child process on its own port."""

    name: str
    env: dict[str, str]
    cwd: Path
    log_path: Path
    port: int = attrs.field(factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"--- start {self.name} on port {self.port}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chitram_falcon", "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Server:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before it was ready\n"
                    + self.log_text()
                )
            try:
                resp = httpx.get(f"{self.url}/health/ready", timeout=2.0)
                if resp.status_code == 200:
                    return self
                last = f"{resp.status_code} {resp.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise AssertionError(
            f"{self.name} not ready after {timeout} s ({last})\n" + self.log_text()
        )

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no finishing of background work."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._close_log()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a graceful uvicorn shutdown), then SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"


class Cluster:
    """What one scale-out test shares: the configuration and the processes it started."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        s3: Any,
        bucket: str,
        prefix: str,
        pg_url: str,
        servers: list[Server],
    ) -> None:
        self.env = env
        self.workdir = workdir
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.pg_url = pg_url
        self.servers = servers

    def server(self, name: str, **overrides: str) -> Server:
        """A started (not yet ready) process; ``overrides`` are extra CHITRAM_* variables."""
        env = {**self.env, **overrides}
        server = Server(name=name, env=env, cwd=self.workdir, log_path=self.workdir / f"{name}.log")
        self.servers.append(server)
        return server.start()

    def ready(self, *names: str, **overrides: str) -> list[Server]:
        started = [self.server(name, **overrides) for name in names]
        return [server.wait_ready() for server in started]

    def s3_keys(self, under: str) -> set[str]:
        """Object keys below ``<test prefix>/<under>``, relative to the test prefix."""
        keys: set[str] = set()
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}"):
            for item in page.get("Contents", []):
                keys.add(item["Key"].removeprefix(f"{self.prefix}/"))
        return keys

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.pg_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


# clients ------------------------------------------------------------------------------------


def register(client: httpx.Client | str, email: str) -> str:
    """A new user's access token."""
    url = f"{client}/api/v1/auth/register" if isinstance(client, str) else "/api/v1/auth/register"
    post = httpx.post if isinstance(client, str) else client.post
    resp = post(url, json={"email": email, "password": PASSWORD}, timeout=30.0)
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jpeg_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (0, 0, 255), quality: int = 90
) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def noisy_jpeg(width: int, height: int, seed: int, quality: int = 85) -> bytes:
    """A JPEG of random noise: costly to decode and unique per seed (no deduplication)."""
    rng = random.Random(seed)
    image = PILImage.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def upload_files(data: bytes, filename: str = "picture.jpg") -> dict[str, Any]:
    return {"file": (filename, data, "image/jpeg")}
