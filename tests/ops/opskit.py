"""Helpers for the operations tests: images, settings, real ``chitram`` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from imagekit import PASSWORD, jpeg_bytes, make_settings, png_bytes  # noqa: F401 - re-exported
from netkit import free_port

PYTHON = sys.executable


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any CHITRAM_*, OTEL_* or multiprocess variable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHITRAM_", "OTEL_", "PROMETHEUS_"))
    }
    env.update(
        {
            "CHITRAM_UPLOAD_RATE_LIMIT": "off",
            "CHITRAM_AUTH_RATE_LIMIT": "off",
            "CHITRAM_WEB_UI": "false",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    env.update(extra)
    return env


def chitram(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "chitram_falcon", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Serve:
    """``chitram serve`` in a child process, its stdout and stderr kept apart in files."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.cwd = cwd
        self.out_path = cwd / f"serve-{self.port}.out"
        self.err_path = cwd / f"serve-{self.port}.err"
        self._out = open(self.out_path, "wb")  # noqa: SIM115 - closed in stop()
        self._err = open(self.err_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [PYTHON, "-m", "chitram_falcon", "serve", "--port", str(self.port), *args],
            cwd=cwd,
            env=env,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90.0) -> Serve:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve not ready after {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._out.close()
        self._err.close()

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
            self._err.flush()
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def lines(self) -> list[str]:
        return [line for line in self.output().splitlines() if line.strip()]


def register(base: str, email: str) -> str:
    resp = httpx.post(
        f"{base}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert resp.status_code == 201, resp.text
    token: str = resp.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
