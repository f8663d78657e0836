"""The one piece of per-request observation: request id, access line, metrics, trace span.

It wraps the ASGI call rather than being a Falcon middleware: it sees the real status and the
bytes as they are sent (streamed files included), and times the request to its last byte.
Per request it costs a header scan, two clock reads, one context-variable set and, when the
access log is on, one log line (see docs/benchmarks.md for the measured figures).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter, time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from chitram_core.logs import new_request_id, request_id, valid_request_id
from chitram_core.observe import Observer
from chitram_falcon.redaction import REDACTED, SECRET_PARAMS

access_log = logging.getLogger("chitram_falcon.access")

ROUTE_KEY = "chitram.route"
"""Where the app leaves the matched route template in the ASGI scope."""

UNMATCHED = "<unmatched>"


_NOTHING = Observer()
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_HEADER = b"x-request-id"

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


def redact_query(query: str) -> str:
    """The query string with the values of ``redaction.SECRET_PARAMS`` replaced."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in SECRET_PARAMS for name, _ in pairs):
        return query
    return urlencode(
        [(n, REDACTED if n.lower() in SECRET_PARAMS else v) for n, v in pairs], safe="[]"
    )


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
) -> None:
    """Run ``fast``, then (when it did not answer) ``app`` for one HTTP request, observed by
    ``observer`` (the app's Chitram instance's: ``ChitramHandle.observer``)."""
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
        seconds = perf_counter() - started
        route = scope.get(ROUTE_KEY) or UNMATCHED
        method = scope["method"]
        if method not in _METHODS:
            method = "OTHER"
        observer.http_request(method, route, status, seconds)
        if span is not None:
            span.finish(method, route, status)
        if access_log.isEnabledFor(logging.INFO):
            _access(scope, method, route, status, sent, seconds)
        request_id.reset(token)


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


def _record_template() -> dict[str, Any]:
    """The attributes every access record shares, as ``LogRecord.__init__`` would set them with
    caller, thread and process collection off (what ``chitram_core.logs.configure`` does)."""
    record = logging.LogRecord(access_log.name, logging.INFO, __file__, 0, ACCESS_FORMAT, (), None)
    fields = vars(record)
    fields.update(funcName="serve", thread=None, threadName=None, process=None, processName=None)
    for name in ("msg", "args", "created", "msecs", "relativeCreated"):
        fields.pop(name)
    return fields


ACCESS_FORMAT = "%s %s %d %dB %.1fms"
_TEMPLATE = _record_template()


def _logging_start() -> float:
    """When logging started, in seconds (``relativeCreated`` counts from it); read off a record,
    since ``logging._startTime`` is seconds before Python 3.13 and nanoseconds from it."""
    probe = logging.LogRecord("chitram", logging.INFO, "", 0, "", None, None)
    return probe.created - probe.relativeCreated / 1000


_START = _logging_start()


def _access(
    scope: dict[str, Any], method: str, route: str, status: int, sent: int, seconds: float
) -> None:
    """Emit the access line through ``logging`` (its handlers, filters and formatters apply as to
    any record), building the record directly: ``Logger.info`` spends most of its ~20 µs on
    ``LogRecord.__init__`` (file-name splitting, thread and process lookups) and the caller walk,
    none of which an access line uses. Measured in benchmarks/observability.py."""
    query = scope.get("query_string", b"")
    client = scope.get("client")
    now = time()
    duration_ms = seconds * 1000
    record = object.__new__(logging.LogRecord)
    record.__dict__ = {
        **_TEMPLATE,
        "msg": ACCESS_FORMAT,
        "args": (method, route, status, sent, duration_ms),
        "created": now,
        "msecs": (now - int(now)) * 1000,
        "relativeCreated": (now - _START) * 1000,
        "method": method,
        "route": route,
        "path": scope.get("path", ""),
        "query": redact_query(query.decode("latin-1")) if query else "",
        "status": status,
        "bytes": sent,
        "duration_ms": round(duration_ms, 3),
        "client": client[0] if client else None,
    }
    access_log.handle(record)
