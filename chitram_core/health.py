"""Health: every dependency really probed, each with its latency."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from chitram_core.models import Check, HealthReport, HealthStatus

if TYPE_CHECKING:
    from chitram_core.chitram import Chitram

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


async def check_health(chitram: Chitram, version: str) -> HealthReport:
    checks: dict[str, Check] = {}

    async def run(name: str, probe: Callable[[], Awaitable[object]]) -> None:
        checks[name] = await _timed(probe)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "database", chitram.database.ping)
        tg.start_soon(run, "storage", chitram.storage.probe)
        if chitram.cache is not None:
            tg.start_soon(run, "cache", chitram.cache.ping)
    if chitram.cache is not None and checks["cache"].status != "healthy":
        # The cache fails open: the service still works, only slower.
        checks["cache"] = Check(
            status="degraded", latency_ms=checks["cache"].latency_ms, detail=checks["cache"].detail
        )
    if chitram.auth is not None:
        for name, check in (await chitram.auth.checks()).items():
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
    if chitram.cache is not None:
        cache_state = "connected" if checks["cache"].status == "healthy" else "disconnected"
    slots = chitram.upload_slots
    return HealthReport(
        status=status,
        version=version,
        database="connected" if checks["database"].status == "healthy" else "disconnected",
        storage="connected" if checks["storage"].status == "healthy" else "disconnected",
        cache=cache_state,
        rate_limiter=chitram.rate_limiter_state(),
        upload_concurrency={
            "limit": slots.capacity,
            "in_use": slots.in_use,
            "waiting": slots.waiting,
        },
        checks=checks,
    )
