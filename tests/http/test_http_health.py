"""/health, /health/live, /health/ready."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from httpkit import Env, assert_error, make_settings

from chitram_falcon import create_app

pytestmark = pytest.mark.anyio


async def test_health_reports_every_part_when_healthy(env: Env) -> None:
    resp = await env.client.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] in {"healthy", "degraded"}
    assert body["database"] == "connected"
    assert body["storage"] == "connected"
    for key in ("version", "cache", "rate_limiter", "upload_concurrency", "checks"):
        assert key in body
    assert {"database", "storage"} <= set(body["checks"])
    assert all(set(c) == {"status", "latency_ms", "detail"} for c in body["checks"].values())


async def test_health_is_503_unhealthy_when_the_database_is_down(env: Env) -> None:
    await env.chitram.database.engine.dispose()
    # Point the engine at a database that cannot be opened: a directory, not a file.
    from sqlalchemy.ext.asyncio import create_async_engine

    from chitram_core.db.sqlite_driver import chitram_url

    broken = env.chitram.settings.data_dir / "not-a-db"
    broken.mkdir()
    env.chitram.database.engine = create_async_engine(chitram_url(f"sqlite:///{broken}"))
    resp = await env.client.get("/health")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unhealthy"
    assert body["database"] == "disconnected"
    assert body["checks"]["database"]["status"] == "unhealthy"
    ready = await env.client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert (await env.client.get("/health/live")).status_code == 200


async def test_live_and_ready(env: Env) -> None:
    live = await env.client.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready = await env.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "connected", "storage": "connected"}


async def test_before_the_lifespan_opens_chitram_routes_answer_503(tmp_path: Path) -> None:
    app = create_app(settings=make_settings(tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        resp = await client.get("/health")
        detail = assert_error(resp, 503, "SERVICE_UNAVAILABLE")
        assert "lifespan" in detail["message"]
        assert resp.headers["retry-after"] == "1"
        assert (await client.get("/health/ready")).status_code == 503
        assert (await client.get("/health/live")).status_code == 200
