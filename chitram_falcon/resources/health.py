"""``/health`` (the full report), ``/health/live`` and ``/health/ready``."""

from __future__ import annotations

import hmac
import logging

import falcon
import falcon.asgi

from chitram_core import to_json
from chitram_core.limits.addresses import parse_address
from chitram_falcon import drain
from chitram_falcon.context import ChitramHandle, client_ip
from chitram_falcon.security import from_trusted_proxy

_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")

log = logging.getLogger("chitram_falcon")


class HealthResource:
    """200 when healthy or degraded, 503 when the database or storage is down.

    The full report (versions, latencies, provider and circuit states) is for operators: a
    client on this machine, or one sending ``Authorization: Bearer <CHITRAM_HEALTH_TOKEN>``.
    Anyone else gets ``{"status"}`` alone, with the same status code.
    """

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        report = await self.handle.chitram.health()
        full = to_json(report)
        resp.media = full if self._detailed(req) else {"status": full["status"]}
        resp.status = 503 if report.status == "unhealthy" else 200
        resp.cache_control = ["no-store"]

    def _detailed(self, req: falcon.asgi.Request) -> bool:
        settings = self.handle.settings
        authorization = req.get_header("Authorization") or ""
        scheme, _, token = authorization.strip().partition(" ")
        if settings.health_token and scheme.lower() == "bearer":
            return hmac.compare_digest(token.strip().encode(), settings.health_token.encode())
        relayed = any(req.get_header(name) for name in _PROXY_HEADERS)
        if relayed and not from_trusted_proxy(req, settings):
            return False  # relayed by an unknown proxy: the peer says nothing about the client
        address = parse_address(client_ip(req, settings))
        return address is not None and address.is_loopback


class LiveResource:
    """The process answers: nothing else is checked (a restart would not fix a database)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "alive"}
        resp.cache_control = ["no-store"]


class ReadyResource:
    """Ready to take traffic: the instance is open and its database and storage answer, and the
    process is not draining (stopping after SIGTERM)."""

    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.cache_control = ["no-store"]
        if drain.draining():  # stopping: the load balancer takes this process out of rotation
            resp.status = 503
            resp.media = {"status": "draining", "database": "unknown", "storage": "unknown"}
            return
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
