"""``chitram`` / ``python -m chitram_falcon``: serve, db upgrade, sweep, configuration errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from netkit import free_port

from chitram_falcon import cli
from chitram_falcon.cli import main, server_stack

PYTHON = sys.executable


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "chitram_falcon", *args],
        cwd=cwd,
        env=_env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_upgrade_creates_the_embedded_database(tmp_path: Path) -> None:
    result = _run(["db", "upgrade"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "chitram-data" / "chitram.db").exists()


def test_sweep_runs_on_an_empty_install(tmp_path: Path) -> None:
    result = _run(["sweep", "--older-than", "0"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "orphans queued: 0" in result.stdout


def test_production_with_the_default_secret_refuses_to_start(tmp_path: Path) -> None:
    result = _run(["serve", "--port", str(free_port())], tmp_path, CHITRAM_ENV="production")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CHITRAM_JWT_SECRET" in lines[0] and "production" in lines[0]
    assert not (tmp_path / "chitram-data").exists()


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = _run(["db", "upgrade"], tmp_path, CHITRAM_MAX_UPLOAD_BYTES="lots")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "CHITRAM_MAX_UPLOAD_BYTES" in result.stderr


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = _run(["--help"], tmp_path)
    assert result.returncode == 0
    for command in ("serve", "db", "sweep"):
        assert command in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_starts_on_the_embedded_default_in_an_empty_directory(
    tmp_path: Path, workers: int
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, "-m", "chitram_falcon", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if resp.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.stdout else ""
                raise AssertionError(f"server did not come up:\n{out}")
            time.sleep(0.2)
        assert resp.json()["database"] == "connected"
        reg = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/register",
            json={"email": "cli@example.com", "password": "correct horse"},
        )
        assert reg.status_code == 201
        assert (tmp_path / "chitram-data" / "chitram.db").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_runs_uvicorn_on_uvloop_and_httptools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The server extra installs them; serve asks uvicorn for them by name."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    # One worker runs uvicorn's Server itself (with the drain before shutdown), same options.
    monkeypatch.setattr(cli, "_serve_one", lambda app, options, drain: calls.append(options))
    for name in [k for k in os.environ if k.startswith("CHITRAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHITRAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHITRAM_CACHE_URL", "off")
    assert main(["serve", "--port", str(free_port()), "--workers", str(workers)]) == 0
    assert server_stack() == ("uvloop", "httptools")
    assert [(c["loop"], c.get("workers", 1)) for c in calls] == [("uvloop", workers)]
    # httptools, through our protocol class adding the head timeout and the connection cap
    protocol = calls[0]["http"]
    assert isinstance(protocol, type) and issubclass(protocol, HttpToolsProtocol)


def test_serve_falls_back_to_asyncio_and_h11_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what a failed import looks like
    assert server_stack() == ("asyncio", "httptools")
    monkeypatch.setitem(sys.modules, "httptools", None)
    assert server_stack() == ("asyncio", "h11")
