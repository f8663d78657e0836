"""The background runner: jobs from any task, closing from any task, draining not cancelling."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from chitram_core.background import Background

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", pytest.param("trio", id="trio")])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "trio":
        pytest.importorskip("trio")
    backend: str = request.param
    return backend


async def test_a_job_started_by_one_task_survives_that_task() -> None:
    runner = Background()
    finished = anyio.Event()

    async def job() -> None:
        await anyio.sleep(0.01)
        finished.set()

    async def opener() -> None:
        await runner.start()
        assert runner.start_soon(job)

    async with anyio.create_task_group() as tg:
        tg.start_soon(opener)
    with anyio.fail_after(10):
        await finished.wait()
    await runner.aclose()


async def test_closing_lets_running_jobs_finish_and_drops_unstarted_ones() -> None:
    runner = Background()
    await runner.start()
    began, release = anyio.Event(), anyio.Event()
    finished: list[str] = []

    async def running() -> None:
        began.set()
        await release.wait()
        await anyio.lowlevel.checkpoint()
        finished.append("running")

    async def never_started() -> None:
        finished.append("never_started")

    runner.start_soon(running)
    await began.wait()
    refused: list[bool] = []

    async def later() -> None:
        refused.append(not runner.start_soon(never_started))  # closing: no new jobs
        release.set()

    runner.start_soon(never_started)  # queued, and closing begins before it gets a turn
    async with anyio.create_task_group() as tg:
        tg.start_soon(later)
        await runner.aclose(grace=30)
    assert refused == [True]
    assert finished == ["running"]
    assert runner.pending == 0


async def test_a_job_still_running_after_the_grace_period_is_cancelled() -> None:
    runner = Background()
    await runner.start()
    started, cancelled = anyio.Event(), anyio.Event()

    async def stuck() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    runner.start_soon(stuck)
    await started.wait()
    await runner.aclose(grace=0.05)
    assert cancelled.is_set()
    assert runner.pending == 0


async def test_a_failing_job_is_logged_and_the_runner_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = Background("test-runner")
    await runner.start()
    done = anyio.Event()

    async def fails() -> None:
        raise RuntimeError("boom")

    async def succeeds() -> None:
        done.set()

    runner.start_soon(fails)
    runner.start_soon(succeeds)
    with anyio.fail_after(10):
        await done.wait()
    await runner.aclose()
    assert any("boom" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_close_twice_and_close_without_start_are_harmless() -> None:
    never_started = Background()
    await never_started.aclose()
    assert not never_started.start_soon(anyio.sleep, 0)
    runner = Background()
    await runner.start()
    await runner.aclose()
    await runner.aclose()
    assert not runner.start_soon(anyio.sleep, 0)
