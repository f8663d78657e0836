"""The one piece of per-request observation: request id, access line, metrics, trace span.

It wraps the ASGI call rather than being a Falcon middleware: it sees the real status and the
bytes as they are sent (streamed files included), and times the request to its last byte.
Per request it costs a header scan, three clock reads, one context-variable set and, when the
access log is on, one tuple queued for the access-line writer (:mod:`chitram_falcon.access`,
which formats and writes off the request path; docs/benchmarks.md has the measured figures).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter, time
from typing import Any

from chitram_core.logs import new_request_id, request_id, valid_request_id
from chitram_core.observe import Observer
from chitram_falcon.access import WRITER, access_log, entry_of, redact_query

__all__ = ["ROUTE_KEY", "UNMATCHED", "RouteTemplate", "answer_now", "redact_query", "serve"]

ROUTE_KEY = "chitram.route"
"""Where the app leaves the matched route template in the ASGI scope."""

UNMATCHED = "<unmatched>"


_NOTHING = Observer()
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_HEADER = b"x-request-id"

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


def _incoming_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == _HEADER:
            text = value.decode("latin-1")
            return text if valid_request_id(text) else None
    return None


FastAnswer = Callable[[dict[str, Any], Send, tuple[bytes, bytes]], Awaitable[int | None]]
"""Answers a request whole with status 200, adding the given header, and says how many body
bytes it sent; or returns None, having sent nothing (``fastread.FastReads.answer``)."""


async def serve(
    app: ASGIApp,
    scope: dict[str, Any],
    receive: Receive,
    send: Send,
    fast: FastAnswer | None = None,
    observer: Observer | None = None,
    proxies: tuple[str, ...] = (),
) -> None:
    """Run ``fast``, then (when it did not answer) ``app`` for one HTTP request, observed by
    ``observer`` (the app's Chitram instance's: ``ChitramHandle.observer``); ``proxies``: the
    trusted proxies whose headers name the client in the access line."""
    observer = observer if observer is not None else _NOTHING
    rid = _incoming_id(scope["headers"]) or new_request_id()
    rid_header = (_HEADER, rid.encode())
    token = request_id.set(rid)
    started = perf_counter()
    status = 500
    sent = 0

    async def observed_send(message: dict[str, Any]) -> None:
        nonlocal status, sent
        kind = message["type"]
        if kind == "http.response.body":
            sent += len(message.get("body", b""))
        elif kind == "http.response.start":
            status = message["status"]
            message["headers"] = [*message.get("headers", ()), rid_header]
        await send(message)

    span = observer.request_span(scope)
    try:
        if span is None:
            answered = await fast(scope, send, rid_header) if fast is not None else None
            if answered is None:
                await app(scope, receive, observed_send)
        else:
            with span.activate():
                answered = await fast(scope, send, rid_header) if fast is not None else None
                if answered is None:
                    await app(scope, receive, observed_send)
        if answered is not None:
            status, sent = 200, answered
    finally:
        method, route = _record(observer, scope, rid, status, sent, started, proxies)
        if span is not None:
            span.finish(method, route, status)
        request_id.reset(token)


def _record(
    observer: Observer,
    scope: dict[str, Any],
    rid: str,
    status: int,
    sent: int,
    started: float,
    proxies: tuple[str, ...],
) -> tuple[str, str]:
    """The metrics and access line of one answered request; (method, route) as recorded."""
    seconds = perf_counter() - started
    route = scope.get(ROUTE_KEY) or UNMATCHED
    method = scope["method"]
    if method not in _METHODS:
        method = "OTHER"
    observer.http_request(method, route, status, seconds)
    if access_log.isEnabledFor(logging.INFO):
        WRITER.add(entry_of(time(), rid, method, route, status, sent, seconds, scope, proxies))
    return method, route


FastLines = Callable[[dict[str, Any]], "tuple[bytes, bytes] | None"]
"""The header lines and body of a 200 needing no I/O, or None (``FastReads.answer_now``)."""

Done = Callable[[int], None]
"""Called with the body bytes sent once the server has written a :func:`answer_now` answer."""


def answer_now(
    fast: FastLines,
    scope: dict[str, Any],
    observer: Observer = _NOTHING,
    proxies: tuple[str, ...] = (),
) -> tuple[bytes, bytes, bytes, Done] | None:
    """For a server that writes the answer itself, without an ASGI call: the header lines and
    the request id's line (as :func:`serve` adds it) and body of the 200 ``fast`` has for
    ``scope``, and what to call once written (the same metrics and access line as
    :func:`serve`); None when ``fast`` has none, or when requests are traced (the span needs
    the ASGI call)."""
    if observer.traces_requests:
        return None
    started = perf_counter()
    found = fast(scope)
    if found is None:
        return None
    rid = _incoming_id(scope["headers"]) or new_request_id()

    def done(sent: int) -> None:
        _record(observer, scope, rid, 200, sent, started, proxies)

    return found[0], b"x-request-id: " + rid.encode() + b"\r\n", found[1], done


class RouteTemplate:
    """Falcon middleware: leaves the route template Falcon matched (its public
    ``req.uri_template``, set once it has routed) where the access log, metrics and span find
    it. Unmatched requests, and those a middleware answered before routing, keep
    :data:`UNMATCHED`; the answers sent before Falcon set their own template."""

    async def process_response(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        template = req.uri_template
        if template is not None:
            req.scope[ROUTE_KEY] = template
