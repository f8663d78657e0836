"""Web UI fixtures: a real server under uvicorn, an attacker's site, headless Chromium.

Browser tests skip when Chromium or Playwright is missing, except under ``CI=true``, where that
is a failure (``tests/web/install-browser.sh`` installs Debian's Chromium).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from netkit import free_port
from webkit import ATTACKER_HOST, PAGE_SIZE, Attacker, Server

IN_CI = os.environ.get("CI", "").lower() == "true"
HERE = Path(__file__).parent
SCREENSHOTS_DIR = os.environ.get("CHITRAM_SCREENSHOTS_DIR")
"""Where the browser tests leave their screenshots: a temporary directory unless this is set
(``CHITRAM_SCREENSHOTS_DIR=docs/screenshots`` refreshes the ones docs/ui.md shows), so that a
test run leaves the checkout as it found it."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The attacker's site is another host name on this machine: a real cross-site origin.
    f"--host-resolver-rules=MAP {ATTACKER_HOST} 127.0.0.1",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHITRAM_CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(
            f"{message} (CI=true: browser tests must run; see tests/web/install-browser.sh)"
        )
    pytest.skip(message)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app as ``chitram serve`` runs it (uvicorn, lifespan, embedded SQLite + files)."""
    data_dir = tmp_path_factory.mktemp("chitram-web")
    port = free_port()
    link_port = free_port()  # where a link-upload test serves its image (127.0.0.1, opened)
    env = {
        **os.environ,
        "CHITRAM_DATA_DIR": str(data_dir),
        "CHITRAM_UPLOAD_RATE_LIMIT": "off",
        "CHITRAM_AUTH_RATE_LIMIT": "off",
        "CHITRAM_TEST_UI_PAGE_SIZE": str(PAGE_SIZE),
        "CHITRAM_TAGGERS": "palette",  # local AI tags for the tag tests
        "CHITRAM_JOBS_POLL_INTERVAL": "0.2",
        "CHITRAM_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
        "CHITRAM_FETCH_ALLOW_PORTS": str(link_port),
    }
    log = (data_dir / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(HERE),
            "serve_app:app_factory",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "on",
            "--log-level",
            "warning",
            "--no-proxy-headers",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError((data_dir / "server.log").read_text())
            try:
                if httpx.get(base_url + "/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 30 s")
            time.sleep(0.1)
        served = Server(base_url, data_dir, link_port=link_port)
        yield served
        served.api.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def attacker() -> Iterator[Attacker]:
    site = Attacker()
    yield site
    site.httpd.shutdown()
    site.httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        _missing("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if SCREENSHOTS_DIR is None:
        return tmp_path_factory.mktemp("screenshots")
    path = Path(SCREENSHOTS_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path
