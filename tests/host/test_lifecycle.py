"""``Chitram`` closes cleanly: from any task, with nothing left behind, without hanging."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from hostkit import ROOT, png_bytes, run_python

from chitram_core import Chitram, Settings

SCRIPT = Path(__file__).with_name("lifecycle_script.py")


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "upload_rate_limit": None,
        "auth_rate_limit": None,
        "allow_anonymous_uploads": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def rendering(chitram: Chitram, sha256: str) -> bool:
    """The background render of this image has begun (the thumbnailer's in-flight jobs)."""
    return chitram.thumbnails.key_for(sha256) in chitram.thumbnails._jobs


@pytest.mark.slow
@pytest.mark.parametrize("run", range(5))
def test_anyio_run_returns_after_closing_even_mid_thumbnail(tmp_path: Path, run: int) -> None:
    """5 of 5 fresh processes: anyio.run returns after close, with no task or thread left."""
    try:
        result = run_python(SCRIPT, str(tmp_path / "data"), cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"anyio.run hung at exit (run {run}); output so far: {exc.stdout!r}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [
        "ok",
        "close_right_after_upload",
        "ok",
        "close_while_the_thumbnail_is_made",
        "ok",
        "open_and_close_in_different_tasks",
    ]


@pytest.mark.anyio
async def test_chitram_opened_in_one_task_is_usable_and_closable_in_another(
    tmp_path: Path,
) -> None:
    chitram = Chitram(settings(tmp_path))
    async with anyio.create_task_group() as tg:
        tg.start_soon(chitram.__aenter__)  # the opening task ends here
    image = await chitram.images.upload(png_bytes(), filename="a.png", owner=None)
    # Background work outlives the task that opened Chitram: the thumbnail is still made.
    with anyio.fail_after(30):
        while not (await chitram.images.get(image.id)).thumbnail_ready:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    closed = anyio.Event()

    async def close() -> None:
        await chitram.__aexit__(None, None, None)
        closed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(close)  # a third task closes it
    assert closed.is_set()


@pytest.mark.anyio
async def test_closing_lets_a_running_thumbnail_finish(tmp_path: Path) -> None:
    async with Chitram(settings(tmp_path)) as chitram:
        image = await chitram.images.upload(png_bytes(2000, 1500), filename="a.png", owner=None)
        with anyio.fail_after(30):
            while not rendering(chitram, image.sha256):
                if (await chitram.images.get(image.id)).thumbnail_ready:
                    break
                await anyio.lowlevel.checkpoint()
    async with Chitram(settings(tmp_path), background=False) as reopened:
        assert (await reopened.images.get(image.id)).thumbnail_ready
