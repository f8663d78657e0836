"""Run by test_lifecycle.py in a fresh process: each phase is its own ``anyio.run``.

A phase that leaves a task or an aiosqlite thread behind exits 3; one that hangs never returns,
and the test's subprocess timeout reports it.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from pathlib import Path

import anyio
import anyio.lowlevel
from PIL import Image as PILImage

from chitram_core import Chitram, Settings

DATA = Path(sys.argv[1])


def settings() -> Settings:
    return Settings(
        env="test",
        data_dir=DATA,
        allow_anonymous_uploads=True,
        upload_rate_limit=None,
        auth_rate_limit=None,
    )


def big_png(color: str) -> bytes:
    # Few bytes, many pixels: the thumbnail takes a while to decode.
    buffer = io.BytesIO()
    PILImage.new("RGB", (3000, 2500), color).save(buffer, "PNG")
    return buffer.getvalue()


def rendering(chitram: Chitram, sha256: str) -> bool:
    """The background render of this image has begun (the thumbnailer's in-flight jobs)."""
    return chitram.thumbnails.key_for(sha256) in chitram.thumbnails._jobs


def leftovers() -> list[str]:
    me = asyncio.current_task()
    found = [repr(t) for t in asyncio.all_tasks() if t is not me and not t.done()]
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            thread.join(5)  # a closed connection's thread may still be on its way out
            if thread.is_alive():
                found.append(thread.name)
    return found


def check(phase: str) -> None:
    left = leftovers()
    if left:
        print(f"{phase}: left behind {left}", flush=True)
        sys.exit(3)


async def close_right_after_upload() -> None:
    async with Chitram(settings()) as chitram:
        await chitram.images.upload(big_png("red"), filename="a.png", owner=None)
    check("close_right_after_upload")


async def close_while_the_thumbnail_is_made() -> None:
    async with Chitram(settings()) as chitram:
        image = await chitram.images.upload(big_png("green"), filename="b.png", owner=None)
        # Wait until the background render has begun (or already finished).
        for _ in range(100_000):
            if rendering(chitram, image.sha256):
                break
            if (await chitram.images.get(image.id)).thumbnail_ready:
                break
            await anyio.lowlevel.checkpoint()
        else:
            print("the background render never began", flush=True)
            sys.exit(4)
    check("close_while_the_thumbnail_is_made")
    async with Chitram(settings(), background=False) as chitram:
        if not (await chitram.images.get(image.id)).thumbnail_ready:
            print("closing cancelled a running thumbnail instead of letting it finish")
            sys.exit(5)


async def open_and_close_in_different_tasks() -> None:
    chitram = Chitram(settings())
    async with anyio.create_task_group() as tg:
        tg.start_soon(chitram.__aenter__)  # entered in a child task that then ends
    await chitram.images.upload(big_png("blue"), filename="c.png", owner=None)
    await chitram.__aexit__(None, None, None)  # exited in the parent task
    check("open_and_close_in_different_tasks")


for phase in (
    close_right_after_upload,
    close_while_the_thumbnail_is_made,
    open_and_close_in_different_tasks,
):
    anyio.run(phase)
    print(f"ok {phase.__name__}", flush=True)
