"""``/health`` (the full report), ``/health/live`` and ``/health/ready``."""

from __future__ import annotations

import logging

import falcon
import falcon.asgi

from chitram_core import to_json
from chitram_falcon.context import ChitramHandle

log = logging.getLogger("chitram_falcon")


class HealthResource:
    """200 when healthy or degraded, 503 when the database or storage is down."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        report = await self.handle.chitram.health()
        resp.media = to_json(report)
        resp.status = 503 if report.status == "unhealthy" else 200
        resp.cache_control = ["no-store"]


class LiveResource:
    """The process answers: nothing else is checked (a restart would not fix a database)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "alive"}
        resp.cache_control = ["no-store"]


class ReadyResource:
    """Ready to take traffic: the instance is open and its database and storage answer."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.cache_control = ["no-store"]
        if not self.handle.is_open:
            resp.status = 503
            resp.media = {"status": "not_ready", "database": "unknown", "storage": "unknown"}
            return
        report = await self.handle.chitram.health()
        ready = report.database == "connected" and report.storage == "connected"
        resp.status = 200 if ready else 503
        resp.media = {
            "status": "ready" if ready else "not_ready",
            "database": report.database,
            "storage": report.storage,
        }
