"""``chitram worker``: API processes started with ``CHITRAM_RUN_JOBS=false`` only record jobs;
a worker process sharing the database runs them, and stops cleanly on SIGTERM: a job running
then finishes within ``CHITRAM_SHUTDOWN_GRACE``, or goes back to the queue for the next worker
at once."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import attrs
import httpx
import pytest
from anyio.abc import Process
from netkit import free_port
from opskit import PYTHON, clean_env
from PIL import Image as PILImage

from chitram_core import Chitram, Settings
from chitram_core.db.tables import utcnow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tags"))

from fake_openai import FakeOpenAI  # the fake model lives with the tag tests

pytestmark = pytest.mark.anyio


def jpeg() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (640, 480), (200, 40, 90)).save(out, "JPEG")
    return out.getvalue()


def api_settings(data_dir: Path) -> Settings:
    return Settings(
        env="test",
        data_dir=data_dir,
        run_jobs=False,
        thumbnail_at_upload=False,  # every thumbnail is a background job
        upload_rate_limit=None,
        password_hash_profile="fast",
    )


async def thumbnail_status(chitram: Chitram, image_id: str) -> str:
    from chitram_core.db import thumbnails

    image = await chitram.images.get(image_id)
    async with chitram.database.connect() as conn:
        row = await thumbnails.get(conn, chitram.thumbnails.key_for(image.sha256))
    return "missing" if row is None else str(row["status"])


@asynccontextmanager
async def worker_process(
    tmp_path: Path, env: dict[str, str], *args: str
) -> AsyncIterator[tuple[Process, list[bytes]]]:
    """``chitram worker`` running, with its output collected as it comes; killed if it is
    still running when the block ends."""
    output: list[bytes] = []
    async with (
        await anyio.open_process(
            [PYTHON, "-m", "chitram_falcon", "worker", *args],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.STDOUT,
        ) as worker,
        anyio.create_task_group() as tg,
    ):
        assert worker.stdout is not None
        stdout = worker.stdout

        async def collect() -> None:
            async for chunk in stdout:
                output.append(chunk)

        tg.start_soon(collect)
        try:
            yield worker, output
        finally:
            if worker.returncode is None:
                worker.kill()


async def sigterm(worker: Process, output: list[bytes]) -> str:
    """SIGTERM the worker and wait for it to exit (60 s at most): what it printed."""
    worker.send_signal(signal.SIGTERM)
    with anyio.fail_after(60):
        await worker.wait()
    return b"".join(output).decode()


async def test_an_api_process_only_enqueues_and_a_worker_runs_the_jobs(tmp_path: Path) -> None:
    settings = api_settings(tmp_path / "data")
    metrics_port = free_port()
    async with Chitram(settings) as api:
        session = await api.auth.register("worker@example.com", "correct horse battery")
        owner = await api.auth.authenticate(session.access_token)
        image = await api.images.upload(jpeg(), filename="a.jpg", owner=owner)
        assert await api.jobs.job("thumbnail", api.thumbnails.key_for(image.sha256)) is not None
        assert await thumbnail_status(api, image.id) == "pending"

        env = clean_env(
            CHITRAM_ENV="test",
            CHITRAM_DATA_DIR=str(settings.data_dir),
            CHITRAM_RUN_JOBS="false",  # the worker runs jobs whatever the API processes say
            CHITRAM_JOBS_POLL_INTERVAL="0.2",
            CHITRAM_SHUTDOWN_GRACE="20",
            CHITRAM_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}",
        )
        async with worker_process(tmp_path, env, "--jobs", "1") as (worker, output):
            with anyio.fail_after(90):
                while await thumbnail_status(api, image.id) != "ready":
                    assert worker.returncode is None, b"".join(output).decode()
                    await anyio.sleep(0.1)
            key = api.thumbnails.key_for(image.sha256)
            assert await api.jobs.job("thumbnail", key) is None
            # The worker's own metrics: the render it did.
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            assert 'chitram_image_work_seconds_count{op="thumbnail"} 1.0' in metrics
            text = await sigterm(worker, output)
    assert worker.returncode == 0, text
    assert "worker started" in text
    assert "SIGTERM received" in text
    assert "worker stopped" in text


def test_worker_refuses_a_bad_jobs_count(tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "chitram_falcon", "worker", "--jobs", "0"],
        cwd=tmp_path,
        env=clean_env(CHITRAM_DATA_DIR=str(tmp_path / "d")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "chitram: --jobs must be at least 1"


@pytest.mark.parametrize("grace", ["0", "-1", "soon"])
def test_a_bad_shutdown_grace_names_its_variable(tmp_path: Path, grace: str) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "chitram_falcon", "worker"],
        cwd=tmp_path,
        env=clean_env(CHITRAM_DATA_DIR=str(tmp_path / "d"), CHITRAM_SHUTDOWN_GRACE=grace),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "CHITRAM_SHUTDOWN_GRACE" in done.stderr


async def test_a_worker_keeps_no_image_cache_in_its_own_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker answers no reads: an in-memory cache would only cost a query per finished
    thumbnail (its image rows to invalidate), so the worker runs without one."""
    import chitram_core.worker as worker_module
    from chitram_core.worker import run_worker

    opened: list[Settings] = []

    class Recorded(Chitram):
        def __init__(self, settings: Settings, **kwargs: object) -> None:
            opened.append(settings)
            super().__init__(settings, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker_module, "Chitram", Recorded)
    settings = api_settings(tmp_path / "data")
    assert settings.cache_url == "memory://"
    stop, started = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_worker(settings, stop, started=started))
        with anyio.fail_after(60):
            await started.wait()
        stop.set()
    assert [s.cache_url for s in opened] == ["off"]
    assert opened[0].run_jobs


@pytest.mark.parametrize(
    ("grace", "model_answers_after", "outcome"),
    [
        pytest.param("30", 2.0, "finished", id="finishes-within-the-grace"),
        pytest.param("1", 60.0, "handed-back", id="handed-back-past-the-grace"),
    ],
)
async def test_sigterm_mid_job_finishes_it_or_hands_it_back_at_once(
    tmp_path: Path, grace: str, model_answers_after: float, outcome: str
) -> None:
    """SIGTERM while the worker's tag job waits on a slow model: within the grace the job
    finishes (tags applied, no job left); past it the job is cancelled and handed back,
    pending, due now and without a lease, so another worker takes it at once instead of after
    the lease; here the API process's own runner does, once the model is quick again."""
    model = FakeOpenAI(answer="Harbour, boats.")
    model.delay = model_answers_after
    tagging = {
        "taggers": ("openai",),
        "openai_base_url": model.base_url,
        "openai_timeout": 120.0,
    }
    settings = attrs.evolve(api_settings(tmp_path / "data"), **tagging)
    try:
        async with Chitram(settings) as api:
            session = await api.auth.register("sigterm@example.com", "correct horse battery")
            owner = await api.auth.authenticate(session.access_token)
            image = await api.images.upload(jpeg(), filename="a.jpg", owner=owner)
            assert await api.jobs.job("tag", image.id) is not None
            env = clean_env(
                CHITRAM_ENV="test",
                CHITRAM_DATA_DIR=str(settings.data_dir),
                CHITRAM_JOBS_POLL_INTERVAL="0.2",
                CHITRAM_SHUTDOWN_GRACE=grace,
                CHITRAM_TAGGERS="openai",
                CHITRAM_OPENAI_BASE_URL=model.base_url,
                CHITRAM_OPENAI_TIMEOUT="120",
            )
            async with worker_process(tmp_path, env) as (worker, output):
                with anyio.fail_after(60):
                    while not model.requests:  # running: the model has the image
                        assert worker.returncode is None, b"".join(output).decode()
                        await anyio.sleep(0.05)
                log = await sigterm(worker, output)
            assert worker.returncode == 0, log
            assert "worker stopped" in log
            job = await api.jobs.job("tag", image.id)
            if outcome == "finished":
                assert job is None, job
                names = {tag.name for tag in await api.tags.for_image(image.id)}
                assert {"harbour", "boats"} <= names
            else:
                assert job is not None
                assert job["state"] == "pending" and job["lease_until"] is None, job
                assert job["next_attempt_at"] <= utcnow()  # due now, not after the lease
                model.delay = 0.0
                assert await api.jobs.run_due() >= 1
                assert await api.jobs.job("tag", image.id) is None
                names = {tag.name for tag in await api.tags.for_image(image.id)}
                assert {"harbour", "boats"} <= names
            assert len(model.requests) == (1 if outcome == "finished" else 2)
    finally:
        model.down()
