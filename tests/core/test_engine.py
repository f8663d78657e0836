"""The image-work engine: bounded memory, killable workers, clean shutdown.

Jobs here are real functions run in real worker processes: stdlib callables stand in for a
decoder that hangs (``time.sleep``), allocates without bound (``bytearray``) or crashes
(``os.abort``), and the engine's own jobs decode real images.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from chitram_core import Chitram
from chitram_core.engine import ImageEngine, MemoryBudget, decode_cost, thumbnail_image
from chitram_core.engine.pool import RETIRE_ABOVE
from chitram_core.errors import (
    DecodeTimeout,
    ImageTooLarge,
    ImageWorkerCrashed,
    InvalidImage,
    ServiceUnavailable,
)
from chitram_core.images.formats import probe
from chitram_core.images.thumbnails import ThumbnailParams

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


def make_engine(**overrides: object) -> ImageEngine:
    values: dict[str, object] = {
        "workers": 1,
        "memory_budget": 256 * MiB,
        "decode_timeout": 30.0,
        "wait_timeout": 30.0,
    }
    values.update(overrides)
    return ImageEngine(**values)  # type: ignore[arg-type]


@pytest.fixture
async def engine() -> AsyncIterator[ImageEngine]:
    engine = make_engine()
    try:
        yield engine
    finally:
        await engine.aclose()


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def dead(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_a_job_runs_in_another_process_and_returns_its_value(engine: ImageEngine) -> None:
    pid = await engine.run(os.getpid, memory=MiB)
    assert pid != os.getpid()
    assert await engine.run(os.getpid, memory=MiB) == pid  # the worker is reused
    assert engine.workers == 1 and engine.jobs_ok == 2


async def test_a_job_past_its_timeout_is_killed_and_the_worker_replaced(
    engine: ImageEngine,
) -> None:
    first = await engine.run(os.getpid, memory=MiB)
    with pytest.raises(DecodeTimeout) as caught:
        await engine.run(time.sleep, 60, memory=MiB, timeout=0.2)
    assert caught.value.code == "INVALID_IMAGE" and caught.value.status == 400
    assert engine.timeouts == 1
    with anyio.fail_after(10):
        while not gone(first):  # noqa: ASYNC110 - waiting for the kernel to reap it
            await anyio.sleep(0.01)
    second = await engine.run(os.getpid, memory=MiB)
    assert second != first


async def test_a_job_over_the_worker_memory_cap_fails_and_the_next_job_works() -> None:
    engine = make_engine(worker_memory=96 * MiB)
    try:
        first = await engine.run(os.getpid, memory=MiB)
        with pytest.raises(InvalidImage, match="memory"):
            await engine.run(bytearray, 1024 * MiB, memory=MiB)
        assert engine.memory_kills == 1
        assert await engine.run(os.getpid, memory=MiB) != first  # that worker was retired
    finally:
        await engine.aclose()


# ``exec`` of source text is a stdlib job that runs inside the worker: one touches 160 MiB and
# keeps it (a job that leaks), the other touches as much and drops it (a normal large job).
HOLD = "import sys; sys.chitram_held = b'x' * (160 << 20)"
DROP = "len(b'x' * (160 << 20))"


async def test_a_large_job_that_leaves_memory_held_retires_its_worker() -> None:
    engine = make_engine(memory_budget=512 * MiB)
    try:
        first = await engine.run(os.getpid, memory=MiB)
        await engine.run(exec, HOLD, memory=200 * MiB)
        assert engine.retired == 1
        assert await engine.run(os.getpid, memory=MiB) != first  # that worker was retired
    finally:
        await engine.aclose()


async def test_a_large_job_that_frees_its_memory_keeps_its_worker() -> None:
    engine = make_engine(memory_budget=512 * MiB)
    try:
        first = await engine.run(os.getpid, memory=MiB)
        for _ in range(3):
            await engine.run(exec, DROP, memory=200 * MiB)
        assert engine.retired == 0
        assert await engine.run(os.getpid, memory=MiB) == first  # the same worker throughout
        assert engine.workers_started == 1
    finally:
        await engine.aclose()


async def test_a_large_decode_keeps_its_worker_once_the_memory_is_given_back() -> None:
    # A 12 MP thumbnail reserves well over RETIRE_ABOVE; after it the worker trims its heap.
    data = png(4000, 3000)
    info = probe(data)
    memory = decode_cost(info, file_size=len(data), thumbnail_size=256)
    assert memory > RETIRE_ABOVE
    engine = make_engine(memory_budget=512 * MiB)
    try:
        first = await engine.run(os.getpid, memory=MiB)
        for _ in range(2):
            await engine.run(
                thumbnail_image, data, ThumbnailParams(), max_pixels=10**8, memory=memory
            )
        assert engine.retired == 0
        assert await engine.run(os.getpid, memory=MiB) == first
    finally:
        await engine.aclose()


async def test_a_decode_over_the_worker_memory_cap_is_an_invalid_image() -> None:
    # 4000x4000 decoded whole is 64 MB of pixels and more in copies: over a 48 MiB cap.
    data = png(4000, 4000)
    engine = make_engine(worker_memory=48 * MiB)
    try:
        with pytest.raises(InvalidImage):
            await engine.run(thumbnail_image, data, ThumbnailParams(), max_pixels=10**8, memory=MiB)
        small = await engine.run(
            thumbnail_image, png(600, 400), ThumbnailParams(), max_pixels=10**8, memory=MiB
        )
        assert (small.width, small.height) == (300, 200)
    finally:
        await engine.aclose()


async def test_a_crashed_worker_is_reported_and_replaced(engine: ImageEngine) -> None:
    with pytest.raises(ImageWorkerCrashed, match="signal"):
        await engine.run(os.abort, memory=MiB)
    assert engine.crashes == 1
    assert await engine.run(os.getpid, memory=MiB) != os.getpid()


async def test_errors_of_the_job_come_back_with_their_code(engine: ImageEngine) -> None:
    with pytest.raises(InvalidImage) as caught:
        await engine.run(
            thumbnail_image,
            b"\x89PNG\r\n\x1a\nnot really",
            ThumbnailParams(),
            max_pixels=10**6,
            memory=MiB,
        )
    assert caught.value.code == "INVALID_IMAGE"
    assert engine.jobs_failed == 1 and engine.workers == 1  # a clean failure keeps the worker


async def test_a_job_larger_than_the_whole_budget_is_refused_at_once(engine: ImageEngine) -> None:
    with pytest.raises(ImageTooLarge):
        await engine.run(os.getpid, memory=engine.budget.total + 1)
    assert engine.jobs_started == 0


async def test_jobs_wait_for_memory_and_run_when_it_is_returned() -> None:
    engine = make_engine(workers=2, memory_budget=100 * MiB)
    results: list[int] = []
    try:
        async with anyio.create_task_group() as tg:
            first_started = anyio.Event()

            async def big() -> None:
                first_started.set()
                await engine.run(time.sleep, 0.5, memory=80 * MiB)
                results.append(1)

            async def second() -> None:
                await first_started.wait()
                await engine.run(os.getpid, memory=50 * MiB)
                results.append(2)

            tg.start_soon(big)
            tg.start_soon(second)
            with anyio.fail_after(10):
                while engine.waiting == 0 and not results:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            assert engine.waiting == 1 and engine.memory_reserved == 80 * MiB
        assert results == [1, 2]  # the second job never ran beside the first
        assert engine.memory_reserved == 0
    finally:
        await engine.aclose()


async def test_a_wait_past_the_timeout_is_503_with_retry_after() -> None:
    engine = make_engine(workers=2, memory_budget=100 * MiB, wait_timeout=0.2)
    try:
        async with anyio.create_task_group() as tg:
            holding = anyio.Event()

            async def hold() -> None:
                holding.set()
                with pytest.raises(DecodeTimeout):
                    await engine.run(time.sleep, 60, memory=80 * MiB, timeout=5)

            tg.start_soon(hold)
            await holding.wait()
            while engine.memory_reserved == 0:  # noqa: ASYNC110
                await anyio.sleep(0.005)
            with pytest.raises(ServiceUnavailable) as caught:
                await engine.run(os.getpid, memory=50 * MiB)
            assert caught.value.status == 503 and caught.value.retry_after >= 1
            assert engine.rejected == 1
            tg.cancel_scope.cancel()
        assert engine.memory_reserved == 0 and engine.running == 0
    finally:
        await engine.aclose()


async def test_cancelling_a_running_job_kills_its_worker(engine: ImageEngine) -> None:
    first = await engine.run(os.getpid, memory=MiB)
    with anyio.move_on_after(0.3):
        await engine.run(time.sleep, 60, memory=MiB)
    assert engine.running == 0 and engine.memory_reserved == 0
    assert await engine.run(os.getpid, memory=MiB) != first


async def test_closing_leaves_no_worker_process() -> None:
    engine = make_engine(workers=2)
    pids = set()
    async with anyio.create_task_group() as tg:
        for _ in range(4):

            async def one() -> None:
                pids.add(await engine.run(os.getpid, memory=MiB))

            tg.start_soon(one)
    assert pids
    await engine.aclose()
    assert all(gone(pid) for pid in pids)
    with pytest.raises(ServiceUnavailable):
        await engine.run(os.getpid, memory=MiB)


async def test_closing_chitram_leaves_no_worker_process(tmp_path: Path) -> None:
    from chitram_core import Settings

    settings = Settings(
        env="test", data_dir=tmp_path / "data", upload_rate_limit=None, auth_rate_limit=None
    )
    async with Chitram(settings) as chitram:
        image = await chitram.images.upload(png(64, 48), filename="a.png")
        pid = await chitram.engine.run(os.getpid, memory=MiB)
        assert image.width == 64
    assert gone(pid)
    assert chitram.engine.workers == 0


def test_the_cost_of_a_thumbnail_grows_with_the_pixels() -> None:
    small, big = probe(png(100, 100)), probe(png(2000, 2000))
    assert decode_cost(big, file_size=0, thumbnail_size=300) > decode_cost(
        small, file_size=0, thumbnail_size=300
    )
    assert decode_cost(big, file_size=0, thumbnail_size=300) >= 2000 * 2000 * 4


# MemoryBudget -------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=1, max_size=12))
def test_the_budget_is_never_exceeded_and_every_job_runs(amounts: list[int]) -> None:
    async def main() -> None:
        budget = MemoryBudget(100)
        peak = 0
        done = 0

        async def job(amount: int) -> None:
            nonlocal peak, done
            await budget.acquire(amount)
            peak = max(peak, budget.used)
            await anyio.lowlevel.checkpoint()
            budget.release(amount)
            done += 1

        async with anyio.create_task_group() as tg:
            for amount in amounts:
                tg.start_soon(job, amount)
        assert peak <= 100 and done == len(amounts) and budget.used == 0

    anyio.run(main)


async def test_a_cancelled_waiter_reserves_nothing_and_unblocks_the_next() -> None:
    budget = MemoryBudget(100)
    await budget.acquire(60)
    got_small = anyio.Event()

    async def small() -> None:
        await budget.acquire(30)
        got_small.set()

    async with anyio.create_task_group() as tg:
        with anyio.move_on_after(0.05):
            await budget.acquire(50)  # waits behind nobody, then gives up
        tg.start_soon(small)
        await got_small.wait()
    assert budget.used == 90 and budget.waiting == 0


async def test_foreground_jobs_get_a_worker_before_waiting_background_jobs() -> None:
    engine = make_engine(workers=1)
    order: list[str] = []
    try:
        async with anyio.create_task_group() as tg:
            started = anyio.Event()

            async def occupy() -> None:
                started.set()
                await engine.run(time.sleep, 0.3, memory=MiB)

            async def job(name: str, background: bool) -> None:
                await engine.run(os.getpid, memory=MiB, background=background)
                order.append(name)

            tg.start_soon(occupy)
            await started.wait()
            tg.start_soon(job, "background", True)
            while engine.waiting < 1:  # noqa: ASYNC110
                await anyio.sleep(0.005)
            tg.start_soon(job, "foreground", False)
            while engine.waiting < 2:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        assert order == ["foreground", "background"]
    finally:
        await engine.aclose()


async def test_a_worker_that_died_while_idle_is_replaced_without_failing_the_job(
    engine: ImageEngine,
) -> None:
    first = await engine.run(os.getpid, memory=MiB)
    os.kill(first, 9)
    with anyio.fail_after(10):
        while not dead(first):  # noqa: ASYNC110 - waiting for the signal to land
            await anyio.sleep(0.01)
    second = await engine.run(os.getpid, memory=MiB)
    assert second != first and engine.crashes == 0


async def test_a_thumbnail_whose_worker_is_killed_is_retried_not_failed(tmp_path: Path) -> None:
    import signal

    from sqlalchemy import select

    from chitram_core import Settings
    from chitram_core.db.tables import thumbnails

    settings = Settings(
        env="test",
        data_dir=tmp_path / "data",
        upload_rate_limit=None,
        auth_rate_limit=None,
        thumbnail_at_upload=False,  # the thumbnail is made for the request below
    )
    async with Chitram(settings, background=False) as chitram:
        image = await chitram.images.upload(png(4000, 4000), filename="big.png")
        engine = chitram.engine
        failures: list[BaseException] = []

        async def ask() -> None:
            try:
                await chitram.images.thumbnail(image.id)
            except ImageWorkerCrashed as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            with anyio.fail_after(30):
                while not engine.busy_pids():  # noqa: ASYNC110
                    await anyio.sleep(0.001)
            os.kill(engine.busy_pids()[0], signal.SIGKILL)  # as the OOM killer would
        assert len(failures) == 1 and failures[0].code == "INVALID_IMAGE"
        async with chitram.database.connect() as conn:
            row = (await conn.execute(select(thumbnails))).mappings().one()
        assert row["status"] == "pending" and row["attempts"] == 1
        assert "signal 9" in row["error"]
        thumb = await chitram.images.thumbnail(image.id)  # a later request makes it
        assert (thumb.width, thumb.height) == (300, 300)


def test_large_messages_cross_the_worker_socket_under_uvloop() -> None:
    """uvloop leaves a descriptor it watched non-blocking; jobs whose payload or answer
    exceeds the socket buffer (every real image) must still go through, as under asyncio."""
    pytest.importorskip("uvloop")
    payload = os.urandom(4 * MiB)

    async def main() -> None:
        engine = make_engine()
        try:
            for _ in range(3):  # the second send follows a wait_readable on the same socket
                assert await engine.run(bytes, payload, memory=MiB) == payload
            assert engine.workers_started == 1
        finally:
            await engine.aclose()

    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
