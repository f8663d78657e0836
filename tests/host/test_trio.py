"""The SDK on both of anyio's backends: the embedded default's whole flow runs on trio as on
asyncio, and parts whose client library runs on asyncio only are refused on trio when Chitram
opens, in one line that names them and what to use instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from chitram_core import Chitram, Settings
from chitram_core.errors import ConfigurationError

SCRIPT = Path(__file__).with_name("sdk_flow_script.py")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_embedded_defaults_whole_flow_runs_with_warnings_as_errors(
    backend: str, tmp_path: Path
) -> None:
    """Open, register, log in, upload (bytes, chunks, a file), dedup, read, ranges, thumbnail,
    list with a cursor, delete, typed errors and health, in a fresh interpreter where any
    warning (an unclosed connection, an unfinished generator, a coroutine never awaited) is an
    error."""
    result = subprocess.run(
        [sys.executable, "-W", "error", str(SCRIPT), backend, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("flow ok")
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"database_url": "postgresql+asyncpg://u@127.0.0.1:1/none"}, ["CHITRAM_DATABASE_URL"]),
        ({"cache_url": "redis://127.0.0.1:1/0"}, ["CHITRAM_CACHE_URL", "CHITRAM_RATE_LIMIT_URL"]),
        ({"rate_limit_url": "redis://127.0.0.1:1/0"}, ["CHITRAM_RATE_LIMIT_URL"]),
    ],
)
def test_asyncio_only_parts_are_refused_under_trio_when_chitram_opens(
    tmp_path: Path, overrides: dict[str, str], named: list[str]
) -> None:
    settings = Settings(env="test", data_dir=tmp_path / "data", **overrides)  # type: ignore[arg-type]

    async def open_it() -> None:
        async with Chitram(settings, background=False):
            pass  # pragma: no cover - refused before

    with pytest.raises(ConfigurationError) as refused:
        anyio.run(open_it, backend="trio")
    message = str(refused.value)
    assert "\n" not in message
    for setting in named:
        assert setting in message, message
    assert "asyncio only" in message
    assert not (tmp_path / "data" / "chitram.db").exists()  # refused before opening anything
