"""A worker: an open :class:`~chitram_core.Chitram` that runs the durable background jobs
(thumbnails, tagging) and the image engine, and serves no HTTP.

API processes started with ``run_jobs=False`` (``CHITRAM_RUN_JOBS=false``) only record jobs in
the upload's transaction; workers sharing their database claim them (on PostgreSQL with
``FOR UPDATE SKIP LOCKED``, so workers never wait on each other's claims), hold a lease while
they run, and a killed worker's jobs are claimed again once their lease runs out. The ``chitram
worker`` command is this function under signal handling.
"""

from __future__ import annotations

import logging

import anyio
import attrs

from chitram_core.cache import plugin_name
from chitram_core.chitram import Chitram
from chitram_core.observe import Observer
from chitram_core.settings import Settings

log = logging.getLogger(__name__)


async def run_worker(
    settings: Settings,
    stop: anyio.Event,
    *,
    observer: Observer | None = None,
    started: anyio.Event | None = None,
) -> None:
    """Run the jobs of ``settings``' database until ``stop`` is set, then stop claiming, give
    the running jobs ``settings.shutdown_grace`` seconds to finish, and hand the rest back to
    the queue (another worker takes them at once, not after their lease). ``started`` is set
    once jobs are being claimed."""
    settings = attrs.evolve(settings, run_jobs=True)
    if plugin_name(settings.cache_url) == "memory":
        # A cache in this process's memory serves nobody here (a worker answers no reads):
        # without it a finished thumbnail costs no query for the cached rows to invalidate.
        settings = attrs.evolve(settings, cache_url="off")
    async with Chitram(settings, observer=observer) as chitram:
        log.info(
            "worker started: job kinds %s, %d thumbnail and %d other jobs at once",
            ", ".join(chitram.jobs.kinds),
            settings.thumbnail_workers,
            settings.jobs_concurrency,
        )
        if started is not None:
            started.set()
        await stop.wait()
        log.info(
            "worker stopping: running jobs get %.0f s to finish, the rest go back to the queue",
            settings.shutdown_grace,
        )
    log.info("worker stopped")
