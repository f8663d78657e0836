"""The code on the Getting started and Embedding pages runs as written: the SDK script, and the
Starlette app (served by uvicorn) with the page's client uploading an image and reading it back;
the plain ASGI host the same way. The FastAPI and Django blocks need packages the development
install does not have: they are compiled only."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from netkit import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGE_API = "http://127.0.0.1:8000"


def python_blocks(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)


def block(page: str, first_line: str) -> str:
    found = [code for code in python_blocks(page) if code.startswith(first_line + "\n")]
    assert len(found) == 1, f"{page}: one block starting {first_line!r} expected"
    return found[0]


def run_module(code: str, name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": name}
    exec(compile(code, name, "exec"), namespace)
    return namespace


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app under uvicorn on a free port of 127.0.0.1, lifespan on; its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it started"
            thread.join(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


@pytest.fixture
def chitram_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in an empty folder, as a newcomer would; fast password hashing for the test."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("CHITRAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHITRAM_PASSWORD_HASH_PROFILE", "fast")
    return tmp_path


def test_getting_started_has_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```bash\n(.*?)^```$", quick_start, re.M | re.S)
    assert len(commands) == 2
    for command in commands:
        assert f"```bash\n{command}```" in page


def test_getting_started_sdk_script_runs(
    chitram_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (script,) = python_blocks("getting-started.md")
    run_module(script, "getting_started")
    out = capsys.readouterr().out.split()
    assert out[1:] == ["image/png", "64", "48"]
    assert (chitram_env / "chitram-data" / "chitram.db").is_file()


def test_starlette_page_uploads_and_serves_an_image(
    chitram_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = run_module(block("embedding.md", "# app.py"), "app")["app"]
    client_code = block("embedding.md", "# try_it.py")
    assert PAGE_API in client_code
    with serving(app) as base:
        home = httpx.get(base + "/")
        assert home.status_code == 200 and "My site" in home.text
        run_module(client_code.replace(PAGE_API, base), "try_it")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("stored ") and lines[0].endswith(" 64 x 48")
    assert lines[1].startswith("served image/png ")


def test_plain_asgi_page_serves_the_host_and_the_api(chitram_env: Path) -> None:
    (code,) = [c for c in python_blocks("embedding.md") if "async def app(scope" in c]
    app = run_module(code, "plain_host")["app"]
    with serving(app) as base:
        assert httpx.get(base + "/hello").text == "hello from the host"
        assert httpx.get(base + "/health/live").status_code == 200


def test_every_other_block_compiles() -> None:
    for page in ("getting-started.md", "embedding.md"):
        for number, code in enumerate(python_blocks(page)):
            compile(code, f"{page} block {number}", "exec")
