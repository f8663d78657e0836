"""Health: every dependency really probed, each with its latency.

Given the parts it reads, not the ``Chitram`` that holds them: this module imports no part of
the composition root.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from chitram_core.images.codecs import format_names
from chitram_core.models import Check, HealthReport, HealthStatus

if TYPE_CHECKING:
    from chitram_core.auth.chain import AuthChain
    from chitram_core.cache.base import Cache
    from chitram_core.db import Database
    from chitram_core.limits import UploadSlots
    from chitram_core.storage import Storage

PROBE_TIMEOUT = 5.0


async def _timed(probe: Callable[[], Awaitable[object]]) -> Check:
    started = time.perf_counter()
    try:
        with anyio.fail_after(PROBE_TIMEOUT):
            await probe()
    except TimeoutError:
        return Check(status="unhealthy", latency_ms=_ms(started), detail="timed out")
    except Exception as exc:  # any failure of a probe is the answer, not an error
        return Check(status="unhealthy", latency_ms=_ms(started), detail=type(exc).__name__)
    return Check(status="healthy", latency_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def rate_limiter_state(limiter_cache: Cache | None) -> str:
    """The v1 ``rate_limiter`` field: the rate limiter's backend as it last found it."""
    if limiter_cache is None:
        return "disabled"
    return "connected" if getattr(limiter_cache, "connected", True) else "degraded"


async def check_health(
    *,
    version: str,
    database: Database,
    storage: Storage,
    cache: Cache | None,
    auth: AuthChain | None,
    upload_slots: UploadSlots,
    limiter_cache: Cache | None,
) -> HealthReport:
    """Probe the database, storage and cache at once (each bounded by ``PROBE_TIMEOUT``), then
    ask each auth provider; ``limiter_cache`` is the rate limiter's backend (None: disabled)."""
    checks: dict[str, Check] = {}

    async def run(name: str, probe: Callable[[], Awaitable[object]]) -> None:
        checks[name] = await _timed(probe)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "database", database.ping)
        tg.start_soon(run, "storage", storage.probe)
        if cache is not None:
            tg.start_soon(run, "cache", cache.ping)
    if cache is not None and checks["cache"].status != "healthy":
        # The cache fails open: the service still works, only slower.
        checks["cache"] = Check(
            status="degraded", latency_ms=checks["cache"].latency_ms, detail=checks["cache"].detail
        )
    if auth is not None:
        for name, check in (await auth.checks()).items():
            checks[f"auth:{name}"] = check

    essential = [checks["database"].status, checks["storage"].status]
    status: HealthStatus
    if "unhealthy" in essential:
        status = "unhealthy"
    elif any(check.status != "healthy" for check in checks.values()):
        status = "degraded"
    else:
        status = "healthy"
    cache_state = "disabled"
    if cache is not None:
        cache_state = "connected" if checks["cache"].status == "healthy" else "disconnected"
    slots = upload_slots
    return HealthReport(
        status=status,
        version=version,
        database="connected" if checks["database"].status == "healthy" else "disconnected",
        storage="connected" if checks["storage"].status == "healthy" else "disconnected",
        cache=cache_state,
        rate_limiter=rate_limiter_state(limiter_cache),
        upload_concurrency=slots.snapshot(),
        checks=checks,
        image_formats=format_names(),
    )
