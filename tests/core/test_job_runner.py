"""The job runner's per-kind settings: leases renewed while a job runs, one kind's full slots
not holding up another kind, and jobs claimed ahead of the free slots (in batches, handed back
on stop)."""

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


async def enqueue_all(runner: JobRunner, kind: str, keys: list[str]) -> None:
    async with runner.db.transaction() as conn:
        for key in keys:
            await runner.enqueue(conn, kind, key)


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

    runner.register("slow", slow, lease=1.0)
    async with database.transaction() as conn:
        await runner.enqueue(conn, "slow", "k")
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run_forever)
        with anyio.fail_after(10):
            while runs == 0:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await anyio.sleep(
            3.5
        )  # more than three leases (a lease of 1 s: a loaded machine stays inside it)
        job = await runner.job("slow", "k")
        assert job is not None and job["state"] == "running"
        assert job["lease_until"] > utcnow()  # type: ignore[operator]
        # Another process would find nothing to claim.
        other = JobRunner(database)
        other.register("slow", slow, lease=1.0)
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


@pytest.mark.parametrize("ahead", [0, 4])
async def test_runners_sharing_a_database_run_each_job_exactly_once(
    database: Database, ahead: int
) -> None:
    """Several processes' runners claim from one table, with or without claiming ahead: every
    job runs once, none twice."""
    runs: list[str] = []

    async def handler(key: str) -> None:
        runs.append(key)
        await anyio.sleep(0.01)

    runners = [JobRunner(database, poll_interval=0.05, concurrency=3) for _ in range(3)]
    for runner in runners:
        runner.register("work", handler, ahead=ahead)
    keys = [f"k{i}" for i in range(40)]
    await enqueue_all(runners[0], "work", keys)
    async with anyio.create_task_group() as tg:
        for runner in runners:
            await tg.start(runner.run_forever)
            runner.wake()
        with anyio.fail_after(60):
            while (await runners[0].counts()).get(("work", "pending"), 0) or len(runs) < 40:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        for runner in runners:
            await runner.stop()
    assert sorted(runs) == sorted(keys)


@pytest.mark.postgres
async def test_claims_skip_the_rows_another_worker_is_claiming(fresh_postgres_url: str) -> None:
    """On PostgreSQL a claim picks rows ``FOR UPDATE SKIP LOCKED``: a worker whose claim
    transaction is still open neither blocks another worker's claim nor shares its jobs."""
    from datetime import timedelta

    from chitram_core.db import jobs as sql

    database = Database(fresh_postgres_url)
    try:
        now = utcnow()
        async with database.transaction() as conn:
            for i in range(5):
                await sql.enqueue(conn, "work", f"k{i}", now - timedelta(seconds=5 - i))
        lease = now + timedelta(seconds=60)
        async with database.transaction() as first:
            mine = await sql.claim_due(first, "work", now, lease, 2)
            assert [key for key, _ in mine] == ["k0", "k1"]
            # The first transaction is still open and holds its rows' locks.
            with anyio.fail_after(10):  # a claim that waited for those locks would hang here
                async with database.transaction() as second:
                    theirs = await sql.claim_due(second, "work", now, lease, 10)
            assert [key for key, _ in theirs] == ["k2", "k3", "k4"]
            assert all(attempt == 1 for _, attempt in mine + theirs)
    finally:
        await database.dispose()


async def test_jobs_claimed_ahead_go_back_to_the_queue_on_stop_and_another_worker_runs_them(
    database: Database,
) -> None:
    """A kind claimed ahead holds more jobs than its slots; stopping hands the held ones back
    at once (pending, lease dropped, the claim's attempt not counted) while the running one
    finishes, and another worker then runs them: every job once, none twice."""
    runs: list[str] = []
    started, release = anyio.Event(), anyio.Event()

    async def handler(key: str) -> None:
        runs.append(key)
        started.set()
        await release.wait()

    runner = JobRunner(database, poll_interval=0.05)
    runner.register("work", handler, concurrency=1, ahead=3)
    await enqueue_all(runner, "work", [f"k{i}" for i in range(6)])
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run_forever)
        with anyio.fail_after(10):
            await started.wait()
        counts = await runner.counts()
        assert counts[("work", "running")] == 4  # one started, three held
        assert counts[("work", "pending")] == 2
        tg.start_soon(runner.stop, 30)
        with anyio.fail_after(10):
            while (await runner.counts()).get(("work", "running")) != 1:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        # The held ones are back before the running one has finished.
        assert runs == ["k0"]
        for i in range(1, 4):
            job = await runner.job("work", f"k{i}")
            assert job is not None
            assert (job["state"], job["attempts"], job["lease_until"]) == ("pending", 0, None)
        release.set()
    assert await runner.job("work", "k0") is None  # finished within the grace

    other = JobRunner(database)
    other.register("work", handler, concurrency=1, ahead=3)
    assert await other.run_due() == 5
    assert sorted(runs) == [f"k{i}" for i in range(6)]


async def test_a_kind_claimed_ahead_claims_in_batches(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims come once half of what the kind may hold is free, not one per finished job."""
    from chitram_core.db import jobs as sql

    claims: list[int] = []
    claim_due = sql.claim_due

    async def counted(*args: object, **kwargs: object) -> list[tuple[str, int]]:
        claimed = await claim_due(*args, **kwargs)  # type: ignore[arg-type]
        claims.append(len(claimed))
        return claimed

    monkeypatch.setattr(sql, "claim_due", counted)
    runs: list[str] = []

    async def handler(key: str) -> None:
        runs.append(key)

    runner = JobRunner(database, poll_interval=0.05)
    runner.register("work", handler, concurrency=2, ahead=6)
    await enqueue_all(runner, "work", [f"k{i:02}" for i in range(40)])
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run_forever)
        with anyio.fail_after(60):
            while len(runs) < 40 or (await runner.counts()).get(("work", "running")):  # noqa: ASYNC110
                await anyio.sleep(0.02)
        await runner.stop()
    assert sorted(runs) == [f"k{i:02}" for i in range(40)]
    found = [n for n in claims if n]
    assert sum(found) == 40
    assert all(n >= 4 for n in found[:-1])  # half of the eight it may hold, or more
