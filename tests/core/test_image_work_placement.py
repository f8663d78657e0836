"""Where image work runs and in what order: structure scans of user bytes never run on the
event loop, and waiting engine work is admitted fairly by owner: the owner with the fewest jobs
running goes first, then the one admitted least recently, then the one waiting longest."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imagekit import make_settings
from PIL import Image

from chitram_core import Chitram
from chitram_core.engine import ImageEngine
from chitram_core.images.formats import JpegScans
from chitram_core.images.metadata import MetadataScanner
from chitram_core.service import ImageService


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "GIF":  # an animation: the GIF walk steps through every frame
        frames = [Image.new("P", (16, 12), i) for i in range(40)]
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], comment=b"x")
    else:
        Image.new("RGB", (64, 48), "teal").save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
async def test_no_structure_scan_of_an_upload_runs_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """A file built to make the structure walk slow (200,000 GIF frames) costs a worker its
    time, not the server's event loop. The service without an engine runs its jobs in worker
    threads, so the walk is seen here, and seen off the loop's thread."""
    threads: list[int] = []
    for cls in (MetadataScanner, JpegScans):
        original = cls.feed

        def spy(self: object, chunk: bytes, original=original) -> None:  # type: ignore[no-untyped-def]
            threads.append(threading.get_ident())
            original(self, chunk)

        monkeypatch.setattr(cls, "feed", spy)
    async with Chitram(make_settings(tmp_path / "data"), background=False) as chitram:
        service = ImageService(
            chitram.settings, chitram.database, chitram.storage, thumbnailer=chitram.thumbnails
        )
        image = await service.upload(_image(fmt), filename=f"a.{fmt.lower()}")
    assert image.width > 0
    assert threads, "the structure scan ran"
    assert threading.get_ident() not in threads


async def _until(ready: Callable[[], bool]) -> None:
    """Let the other tasks run until ``ready()`` (each submitted job is queued, in order)."""
    for _ in range(10_000):
        if ready():
            return
        await anyio.sleep(0.001)
    raise AssertionError("the jobs never queued")


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=8),
)
def test_a_new_owner_waits_for_at_most_the_job_in_front_of_it(queued: list[str]) -> None:
    """Whatever other owners have queued, a job of an owner with no work in the engine waits
    for at most one job of each other owner; owners with many jobs take turns."""

    async def scenario() -> list[str]:
        engine = ImageEngine(workers=1, memory_budget=100, decode_timeout=10, wait_timeout=30)
        order: list[str] = []
        try:
            await engine.budget.acquire(100)  # every job now waits for room

            async def submit(owner: str, tag: str) -> None:
                order.append(await engine.run(str, tag, memory=10, owner=owner))

            async with anyio.create_task_group() as tg:
                for k, owner in enumerate(queued):
                    tg.start_soon(submit, owner, f"{owner}{k}")
                    await _until(lambda k=k: engine.waiting >= k + 1)
                tg.start_soon(submit, "newcomer", "new")
                await _until(lambda: engine.waiting >= len(queued) + 1)
                engine.budget.release(100)
        finally:
            await engine.aclose()
        return order

    order = anyio.run(scenario)
    assert sorted(order) == sorted([*(f"{o}{k}" for k, o in enumerate(queued)), "new"])
    # Before the newcomer's job: at most one job of each other owner (the one in front).
    ahead = [tag[0] for tag in order[: order.index("new")]]
    assert len(ahead) == len(set(ahead))
    # The others in turns: never two of one owner while another owner still waits.
    rest = [tag[0] for tag in order if tag != "new"]
    for i in range(1, len(rest)):
        if rest[i] == rest[i - 1]:
            assert set(rest[i:]) == {rest[i]}


def test_the_gate_keeps_no_record_of_owners_that_left() -> None:
    async def scenario() -> None:
        engine = ImageEngine(workers=1, memory_budget=100, decode_timeout=10, wait_timeout=30)
        try:
            for owner in ("a", "b", "c"):
                assert await engine.run(str, owner, memory=10, owner=owner) == owner
            gate = engine._gates[False]
            assert gate._active == {} and gate._last == {} and gate.waiting == 0
        finally:
            await engine.aclose()

    anyio.run(scenario)


def test_work_a_request_waits_for_goes_before_queued_background_work() -> None:
    """A background thumbnail queued for memory never holds an upload's verification."""

    async def scenario() -> list[str]:
        engine = ImageEngine(workers=1, memory_budget=100, decode_timeout=10, wait_timeout=30)
        order: list[str] = []
        try:
            await engine.budget.acquire(100)

            async def submit(tag: str, background: bool) -> None:
                order.append(await engine.run(str, tag, memory=90, background=background))

            async with anyio.create_task_group() as tg:
                tg.start_soon(submit, "thumbnail", True)
                await _until(lambda: engine.waiting >= 1)
                tg.start_soon(submit, "upload", False)
                await _until(lambda: engine.waiting >= 2)
                engine.budget.release(100)
        finally:
            await engine.aclose()
        return order

    assert anyio.run(scenario) == ["upload", "thumbnail"]


class Held:
    """A job that runs in an engine worker until :meth:`release` (it reads a named pipe)."""

    def __init__(self, engine: ImageEngine, path: Path, owner: str) -> None:
        os.mkfifo(path)
        self.engine, self.path, self.owner = engine, path, owner

    async def run(self) -> None:
        await self.engine.run(Path.read_text, self.path, memory=1, owner=self.owner)

    async def release(self) -> None:
        await anyio.to_thread.run_sync(self.path.write_text, "done")


async def _admission_order(
    tmp_path: Path, running: list[str], queued: list[str], arriving: list[str]
) -> list[str]:
    """Owners' jobs in the order they ran: ``running`` hold every worker, ``queued`` wait,
    then ``arriving`` come one after another; then the first running job ends."""
    engine = ImageEngine(
        workers=len(running), memory_budget=100, decode_timeout=60, wait_timeout=60
    )
    order: list[str] = []
    try:
        held = [Held(engine, tmp_path / f"held{k}", o) for k, o in enumerate(running)]

        async def submit(owner: str, tag: str) -> None:
            order.append(await engine.run(str, tag, memory=10, owner=owner))

        async with anyio.create_task_group() as tg:
            for job in held:
                tg.start_soon(job.run)
            await _until(lambda: engine.running == len(running))
            for k, owner in enumerate([*queued, *arriving]):
                tg.start_soon(submit, owner, f"{owner}{k}")
                await _until(lambda k=k: engine.waiting >= k + 1)
            # One worker frees up: the waiting jobs run on it one after the other, in the order
            # they are admitted; then the others.
            await held[0].release()
            await _until(lambda: len(order) == len(queued) + len(arriving))
            for job in held[1:]:
                await job.release()
        gate = engine._gates[False]
        assert gate._active == {} and gate._running == {} and gate._last == {}
        assert engine.budget.used == 0 and engine.running == 0
    finally:
        await engine.aclose()
    return order


@pytest.mark.anyio
async def test_a_user_with_nothing_running_goes_before_the_queue_of_a_user_with_work_running(
    tmp_path: Path,
) -> None:
    """One worker, busy with a job of user a; two more of a's jobs wait. A job of user b that
    arrives now is the next to run, not after the job at the front of a's queue."""
    order = await _admission_order(tmp_path, running=["a"], queued=["a", "a"], arriving=["b"])
    assert order == ["b2", "a0", "a1"]


@pytest.mark.anyio
async def test_users_with_nothing_running_go_in_arrival_order(tmp_path: Path) -> None:
    order = await _admission_order(
        tmp_path, running=["a"], queued=["a", "a"], arriving=["c", "b", "c"]
    )
    # c and b each once, by arrival; then a (admitted longest ago) and c take turns.
    assert order == ["c2", "b3", "a0", "c4", "a1"]


@pytest.mark.anyio
async def test_the_user_with_fewer_jobs_running_goes_first(tmp_path: Path) -> None:
    """Three workers: two run jobs of a, admitted first, one a job of b. b has fewer running,
    so b's job goes before a's queued one although a was admitted less recently."""
    order = await _admission_order(tmp_path, running=["a", "a", "b"], queued=["a"], arriving=["b"])
    assert order == ["b1", "a0"]


@pytest.mark.anyio
async def test_a_job_that_fits_the_room_left_runs_while_the_candidate_waits_for_memory(
    tmp_path: Path,
) -> None:
    """Two workers; a's job runs holding 60 of 100 bytes of memory. b's job needs 50 and
    waits for memory; c's job, arriving after it, needs 10: it fits and a worker is idle, so
    it runs now rather than behind b's."""
    engine = ImageEngine(workers=2, memory_budget=100, decode_timeout=60, wait_timeout=60)
    order: list[str] = []
    try:
        fifo = tmp_path / "held"
        os.mkfifo(fifo)

        async def submit(owner: str, memory: int) -> None:
            order.append(await engine.run(str, owner, memory=memory, owner=owner))

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: engine.run(Path.read_text, fifo, memory=60, owner="a"))
            await _until(lambda: engine.running == 1)
            tg.start_soon(submit, "b", 50)
            await _until(lambda: engine.waiting == 1)
            with anyio.fail_after(60):
                await submit("c", 10)
            assert order == ["c"]  # b still waits for memory
            await anyio.to_thread.run_sync(fifo.write_text, "done")
        assert order == ["c", "b"]
        assert engine.budget.used == 0 and engine.running == 0
    finally:
        await engine.aclose()
