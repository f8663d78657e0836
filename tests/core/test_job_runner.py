"""The job runner's per-kind settings: leases renewed while a job runs, and one kind's full
slots not holding up another kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from chitram_core.db import Database
from chitram_core.db.tables import utcnow
from chitram_core.jobs import JobRunner

pytestmark = pytest.mark.anyio


@pytest.fixture
async def database(tmp_path: Path, database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.upgrade()
    yield db
    await db.dispose()


async def test_a_running_jobs_lease_is_renewed_so_nobody_takes_it_over(
    database: Database,
) -> None:
    runner = JobRunner(database, poll_interval=0.05)
    release = anyio.Event()
    runs = 0

    async def slow(key: str) -> None:
        nonlocal runs
        runs += 1
        await release.wait()

    runner.register("slow", slow, lease=0.3)
    async with database.transaction() as conn:
        await runner.enqueue(conn, "slow", "k")
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run_forever)
        with anyio.fail_after(10):
            while runs == 0:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await anyio.sleep(1.0)  # more than three leases
        job = await runner.job("slow", "k")
        assert job is not None and job["state"] == "running"
        assert job["lease_until"] > utcnow()  # type: ignore[operator]
        # Another process would find nothing to claim.
        other = JobRunner(database)
        other.register("slow", slow, lease=0.3)
        assert await other.run_one("slow", "k") is False
        release.set()
        with anyio.fail_after(10):
            while await runner.job("slow", "k") is not None:  # noqa: ASYNC110 - polling the database
                await anyio.sleep(0.02)
        await runner.stop()
    assert runs == 1


async def test_a_kind_with_full_slots_does_not_hold_up_another(database: Database) -> None:
    runner = JobRunner(database, poll_interval=0.05)
    release = anyio.Event()
    quick_done = anyio.Event()

    async def blocking(key: str) -> None:
        await release.wait()

    async def quick(key: str) -> None:
        quick_done.set()

    runner.register("blocking", blocking, concurrency=1)
    runner.register("quick", quick)
    async with database.transaction() as conn:
        for i in range(5):
            await runner.enqueue(conn, "blocking", f"b{i}")
        await runner.enqueue(conn, "quick", "q", delay=0.2)  # due after the backlog
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run_forever)
        with anyio.fail_after(10):
            await quick_done.wait()
        counts = await runner.counts()
        assert counts[("blocking", "running")] == 1
        release.set()
        with anyio.fail_after(20):
            while (await runner.counts()).get(("blocking", "pending"), 0):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        await runner.stop()


async def test_run_due_leaves_out_kinds_that_have_a_pass_of_their_own(
    database: Database,
) -> None:
    runner = JobRunner(database)
    done: list[str] = []

    async def handler(key: str) -> None:
        done.append(key)

    runner.register("swept", handler)
    runner.register("apart", handler, swept=False)
    async with database.transaction() as conn:
        await runner.enqueue(conn, "swept", "a")
        await runner.enqueue(conn, "apart", "b")
    assert await runner.run_due() == 1
    assert done == ["a"]
    assert await runner.due("apart") == ["b"]


async def test_stopping_lets_a_running_job_finish_within_the_grace(database: Database) -> None:
    runner = JobRunner(database, poll_interval=0.05)
    started, finished = anyio.Event(), anyio.Event()

    async def job(key: str) -> None:
        started.set()
        await anyio.sleep(0.5)
        finished.set()

    runner.register("job", job)
    async with database.transaction() as conn:
        await runner.enqueue(conn, "job", "k")
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run_forever)
        with anyio.fail_after(10):
            await started.wait()
        await runner.stop(grace=10)
    assert finished.is_set()
    assert await runner.job("job", "k") is None  # done, not handed back
