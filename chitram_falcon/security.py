"""The security headers of every answer, and what counts as an https request: decided here only.

Every answer carries ``X-Content-Type-Options: nosniff`` (JSON errors included), so no answer of
ours is ever sniffed into HTML. ``Strict-Transport-Security`` goes on answers to requests that
came over https: directly, or through a trusted proxy that says so in ``X-Forwarded-Proto``
(HSTS over plain http is ignored by browsers, and a client-set ``X-Forwarded-Proto`` from an
untrusted peer proves nothing). What else an answer carries depends on what it is (its
:class:`Policy`): an image's bytes are sandboxed, a web page gets the UI's content security
policy and framing rules.

:func:`security_headers` is the one function that lists them. Falcon answers get them from the
:class:`SecurityHeaders` middleware (a resource names its policy with :func:`use_policy`); the
answers sent before Falcon (``chitram_falcon.fastread``) take the same list as raw ASGI pairs
(:func:`raw_security_headers`), with the https decision from the same :func:`is_https`.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Sequence
from typing import Any

import falcon.asgi

from chitram_core import Settings
from chitram_core.limits.addresses import parse_address

HSTS = "max-age=31536000"

Headers = tuple[tuple[str, str], ...]
RawHeaders = tuple[tuple[bytes, bytes], ...]


class Policy(enum.Enum):
    """What an answer is, as far as the browser's protections go."""

    API = "api"
    """JSON (answers and errors), redirects, static assets: nosniff (and HSTS) only."""
    FILE = "file"
    """An image's bytes (file, thumbnail, variant): also sandboxed, so that a file a browser
    opens directly can run nothing even if it were ever taken for a document; inline styles
    only, for the browser's image viewer."""
    PAGE = "page"
    """A web UI page: the UI's content security policy, no framing, no referrer off-site."""


_POLICY_HEADERS: dict[Policy, Headers] = {
    Policy.API: (),
    # ``style-src 'unsafe-inline'``: a file opened directly is shown in the browser's own image
    # viewer, whose page Chromium styles inline; the sandbox (no scripts) stays.
    Policy.FILE: (
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    ),
    Policy.PAGE: (
        (
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'",
        ),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ),
}
_POLICY_ATTR = "security_policy"


@functools.cache
def security_headers(policy: Policy, https: bool) -> Headers:
    """The security headers of an answer of kind ``policy`` to a request that came over https
    (``https``) or not: the one list every answer's security headers come from."""
    headers: Headers = (("X-Content-Type-Options", "nosniff"), *_POLICY_HEADERS[policy])
    if https:
        headers += (("Strict-Transport-Security", HSTS),)
    return headers


@functools.cache
def raw_security_headers(policy: Policy, https: bool) -> RawHeaders:
    """:func:`security_headers` as an ASGI server takes them (lower-case names, bytes)."""
    return raw(security_headers(policy, https))


def raw(headers: Headers) -> RawHeaders:
    """Header pairs as an ASGI server takes them: lower-case names, latin-1 bytes."""
    return tuple((name.lower().encode(), value.encode("latin-1")) for name, value in headers)


def header_lines(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """Header pairs as HTTP/1.1 writes them (``name: value\r\n`` each); None when a name or
    value holds a line break or NUL, which only a server's own checks may answer."""
    for name, value in headers:
        if _UNSAFE.search(name) or _UNSAFE.search(value):
            return None
    return b"".join(b"%s: %s\r\n" % pair for pair in headers)


_UNSAFE = re.compile(rb"[\x00\r\n]")


def use_policy(resp: falcon.asgi.Response, policy: Policy) -> None:
    """Mark the answer ``resp`` is as ``policy`` (the default is :attr:`Policy.API`);
    :class:`SecurityHeaders` adds that policy's headers when the answer goes out."""
    setattr(resp.context, _POLICY_ATTR, policy)


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


def is_https(
    scheme: str, forwarded_proto: str | None, remote_addr: str, settings: Settings
) -> bool:
    """Whether a request is https for its client: it came over https, or over plain http from a
    trusted proxy whose ``X-Forwarded-Proto`` (its last value, the one our proxy appended) says
    ``https``. Falcon requests ask through :func:`request_is_https`; the answers sent before
    Falcon pass the same values from the ASGI scope."""
    if scheme == "https":
        return True
    if forwarded_proto is None or not settings.trusted_proxies:
        return False  # no proxy can vouch: nothing more to read
    return forwarded_https(forwarded_proto, remote_addr, settings)


def request_is_https(req: falcon.asgi.Request, settings: Settings) -> bool:
    if req.scheme == "https":
        return True
    if not settings.trusted_proxies:
        return False
    return is_https(req.scheme, req.get_header("X-Forwarded-Proto"), req.remote_addr, settings)


def forwarded_https(proto: str | None, remote_addr: str, settings: Settings) -> bool:
    """A request over plain http is https for the client when a trusted proxy says so: the last
    ``X-Forwarded-Proto`` value (the one our proxy appended) is ``https``."""
    last = (proto or "").split(",")[-1].strip().lower()
    return last == "https" and peer_is_trusted(remote_addr, settings)


class SecurityHeaders:
    """Falcon middleware: runs for every response, errors and unrouted paths included, and adds
    :func:`security_headers` for the answer's policy (see :func:`use_policy`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        policy = getattr(resp.context, _POLICY_ATTR, Policy.API)
        resp.set_headers(security_headers(policy, request_is_https(req, self.settings)))


def public_base(req: falcon.asgi.Request, settings: Settings) -> str:
    """Scheme and host for links shown to people: ``CHITRAM_PUBLIC_URL`` when set; otherwise
    nothing (the links are relative). Never the request's ``Host``, which a client chooses
    (docs/decisions.md, "Absolute URLs never come from the Host header")."""
    return settings.public_url or ""


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def trusted_origin(req: falcon.asgi.Request, settings: Settings, secure: bool) -> str | None:
    """``scheme://host`` for an absolute URL a third party must call back (the OAuth callback):
    ``CHITRAM_PUBLIC_URL`` when set; else the request's own only when its ``Host`` names this
    machine (``localhost``, ``127.0.0.1``, ``[::1]``, any port: development); else None."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = (req.get_header("Host") or req.netloc or "").strip().lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name not in LOOPBACK_HOSTS:
        return None
    return f"{'https' if secure else req.scheme}://{host}"
