"""Headers every response carries, and what counts as an https request.

``X-Content-Type-Options: nosniff`` goes on everything (JSON errors included), so no answer of
ours is ever sniffed into HTML. ``Strict-Transport-Security`` goes on answers to requests that
came over https: directly, or through a trusted proxy that says so in ``X-Forwarded-Proto``
(HSTS over plain http is ignored by browsers, and a client-set ``X-Forwarded-Proto`` from an
untrusted peer proves nothing).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import falcon.asgi

from chitram_core import Settings
from chitram_core.limits.addresses import parse_address

HSTS = "max-age=31536000"


def from_trusted_proxy(req: falcon.asgi.Request, settings: Settings) -> bool:
    return peer_is_trusted(req.remote_addr, settings)


def peer_is_trusted(remote_addr: str, settings: Settings) -> bool:
    """Whether the peer at ``remote_addr`` is one of ``settings.trusted_proxies``."""
    peer = parse_address(remote_addr)
    if peer is None:
        return False
    for item in settings.trusted_proxies:
        network = ipaddress.ip_network(item.strip(), strict=False)
        if peer.version == network.version and peer in network:
            return True
    return False


def request_is_https(req: falcon.asgi.Request, settings: Settings) -> bool:
    if req.scheme == "https":
        return True
    if not settings.trusted_proxies:  # no proxy can vouch: nothing more to read
        return False
    return forwarded_https(req.get_header("X-Forwarded-Proto"), req.remote_addr, settings)


def forwarded_https(proto: str | None, remote_addr: str, settings: Settings) -> bool:
    """A request over plain http is https for the client when a trusted proxy says so: the last
    ``X-Forwarded-Proto`` value (the one our proxy appended) is ``https``."""
    last = (proto or "").split(",")[-1].strip().lower()
    return last == "https" and peer_is_trusted(remote_addr, settings)


class SecurityHeaders:
    """Falcon middleware: runs for every response, errors and unrouted paths included."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        if request_is_https(req, self.settings):
            resp.set_header("Strict-Transport-Security", HSTS)


def public_base(req: falcon.asgi.Request, settings: Settings) -> str:
    """Scheme and host for links shown to people: ``CHITRAM_PUBLIC_URL`` when set, never a
    ``Host`` header a client chose; otherwise the request's own."""
    return settings.public_url or req.prefix
