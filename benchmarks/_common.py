"""What the benchmark scripts share: the raw ASGI baseline, wrk, ports and readiness."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def raw_server(
    port: int,
    path: str,
    content_type: bytes = b"image/jpeg",
    *,
    loop: str = "auto",
    http: str = "auto",
) -> None:
    """A bare ASGI app answering every request with the file's bytes: the stack's ceiling.

    ``loop`` / ``http`` as uvicorn takes them (``"uvloop"`` / ``"httptools"`` to pin the fastest
    stock stack; ``"auto"`` picks them when installed)."""
    import uvicorn

    body = Path(path).read_bytes()
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", loop=loop, http=http
    )


def falcon_server(port: int, path: str, content_type: str = "image/jpeg") -> None:
    """A bare Falcon ASGI app serving the file's bytes on any path: Falcon's own floor, on
    uvloop + httptools (no middleware, one resource, ``resp.data``)."""
    import falcon.asgi
    import uvicorn

    body = Path(path).read_bytes()

    class Resource:
        async def on_get(self, req: Any, resp: Any, rest: str) -> None:
            resp.content_type = content_type
            resp.data = body

    app = falcon.asgi.App()
    app.add_sink(Resource().on_get, "/(?P<rest>.*)")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        loop="uvloop",
        http="httptools",
    )


def pinned(cpu: int | None) -> list[str]:
    """A ``taskset -c CPU`` prefix, or nothing when ``cpu`` is None or taskset is missing."""
    if cpu is None:
        return []
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu)] if taskset else []


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing it with apt-get ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("could not install wrk (apt-get install -y wrk)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[bytes], grace: float = 30) -> None:
    """Terminate a server and wait for it; kill it if it is not gone within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def parse_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]
