"""Uploads of several users at once: one user's queue never holds another user's upload.

Image work is admitted by owner (the owner with the fewest jobs running first), and the upload
slots keep the last few for users holding none. Each test builds the queue it needs by holding
what the uploads wait for (memory of the image-work budget, a worker, upload slots) and checks
who gets through: no timing is measured."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from httpkit import Env, bearer, jpeg_bytes, open_env, png_bytes

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
PATIENCE = 60  # seconds: a bound for a loaded machine, never a figure of the test


async def _user(env: Env) -> tuple[str, str]:
    token = await env.register()
    me = await env.client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    return token, f"user:{me.json()['id']}"


async def _until(ready: Callable[[], bool]) -> None:
    """Let the server's tasks run until ``ready()``; fail after ``PATIENCE``."""
    with anyio.fail_after(PATIENCE):
        while True:
            if ready():
                return
            await anyio.sleep(0.005)


async def test_an_upload_goes_before_the_queued_uploads_of_a_user_with_work_running(
    tmp_path: Path,
) -> None:
    """User a has a job running and two large uploads queued for image work, waiting for
    memory; user b's small upload, arriving last, is admitted first and answers 201 while
    a's still wait."""
    async with open_env(tmp_path, image_workers=2, image_wait_timeout=PATIENCE * 2) as env:
        (a, a_owner), (b, _) = await _user(env), await _user(env)
        engine = env.chitram.engine
        # Room for a small image's job (8 MiB and its bytes), none for a 1000x1000 PNG's
        # thumbnail decode (some 20 MiB).
        held_memory = engine.budget.total - 12 * MiB
        await engine.budget.acquire(held_memory)
        fifo = tmp_path / "running"
        os.mkfifo(fifo)
        answers: dict[str, int] = {}

        async def upload(name: str, token: str, data: bytes, kind: str) -> None:
            resp = await env.upload(
                token, data, filename=f"{name}.{kind}", content_type=f"image/{kind}"
            )
            answers[name] = resp.status_code

        async with anyio.create_task_group() as tg:
            # a's job holding one worker (it reads a named pipe until the test writes to it)
            tg.start_soon(lambda: engine.run(Path.read_text, fifo, memory=1, owner=a_owner))
            await _until(lambda: engine.running == 1)
            for name in ("a1", "a2"):
                tg.start_soon(upload, name, a, png_bytes(1000, 1000), "png")
            await _until(lambda: engine.waiting == 2)
            with anyio.fail_after(PATIENCE):
                await upload("b", b, jpeg_bytes(), "jpeg")
            assert answers == {"b": 201}
            assert engine.waiting == 2  # a's still queued
            engine.budget.release(held_memory)
            await anyio.to_thread.run_sync(fifo.write_text, "done")
        assert answers == {"b": 201, "a1": 201, "a2": 201}


async def test_users_holding_upload_slots_leave_the_reserved_ones_to_a_user_holding_none(
    tmp_path: Path,
) -> None:
    """Three upload slots, one reserved: a's first two uploads hold two (waiting for image
    work, with a job of a's running) and a's third waits although a slot is free; b's upload
    takes the reserved slot at once and answers 201 while a's wait."""
    async with open_env(
        tmp_path,
        upload_concurrency=3,
        upload_reserved_slots=1,
        image_workers=2,
        image_wait_timeout=PATIENCE * 2,
    ) as env:
        (a, a_owner), (b, _) = await _user(env), await _user(env)
        engine, slots = env.chitram.engine, env.chitram.upload_slots
        held_memory = engine.budget.total - 12 * MiB  # a's large images wait for image work
        await engine.budget.acquire(held_memory)
        fifo = tmp_path / "running"
        os.mkfifo(fifo)
        answers: dict[str, int] = {}

        async def upload(name: str) -> None:
            resp = await env.upload(a, png_bytes(1000, 1000))
            answers[name] = resp.status_code

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: engine.run(Path.read_text, fifo, memory=1, owner=a_owner))
            await _until(lambda: engine.running == 1)
            for k, name in enumerate(("a1", "a2")):
                tg.start_soon(upload, name)
                await _until(lambda k=k: slots.in_use == k + 1)
            tg.start_soon(upload, "a3")
            await _until(lambda: slots.waiting == 1)  # one slot free, but reserved
            assert slots.available == 1
            with anyio.fail_after(PATIENCE):
                resp = await env.upload(
                    b, jpeg_bytes(), filename="b.jpg", content_type="image/jpeg"
                )
            assert resp.status_code == 201, resp.text
            assert answers == {} and slots.waiting == 1
            engine.budget.release(held_memory)
            await anyio.to_thread.run_sync(fifo.write_text, "done")
        assert answers == {"a1": 201, "a2": 201, "a3": 201}
