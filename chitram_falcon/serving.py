"""Slow clients bounded at the connection: ``chitram serve``'s HTTP protocol for uvicorn.

uvicorn (with httptools) has a keep-alive timeout but no limit on how long a request head may
take, and accepts connections without bound. :class:`BoundedHttpToolsProtocol` adds both:

- a connection must send a whole request head within ``header_timeout`` seconds of being
  accepted, and each next head within uvicorn's keep-alive timeout (``timeout_keep_alive``,
  5 s) of its previous answer, or ``header_timeout`` if that is shorter; otherwise it is closed
  (a half-sent head holds a descriptor for at most that long). The deadline after an answer
  stands in for uvicorn's keep-alive timer, which would otherwise be armed and cancelled
  on every request;
- at most ``max_connections`` are open in the process: a new one closes the connection that has
  waited longest for its request head; when every connection is inside a request, the new one
  is closed at once. A flood of half-sent heads therefore never locks out a client that sends
  its head at once.

Request bodies are bounded in the app (``CHITRAM_BODY_IDLE_TIMEOUT``: ``chitram_falcon.asgi``),
on any server.

A warm public read (``ChitramApp.answer_now``: the prepared answer of ``chitram_falcon.fastread``
when its lookup needs no I/O) is written here, in one system call, as soon as its head is
parsed: the protocol fills in the scope as uvicorn would (method, path, query) and asks the app,
before uvicorn builds its request cycle (an object and an event per request) or starts an ASGI
task. The answer has the same status line, server headers and header lines uvicorn writes for
the app's own, and the same request id, metrics and access line the app records. Anything else
(a method other than GET or HEAD, a percent-encoded path, an upgrade, a pipelined request behind
one still answering, a paused transport, a draining process) goes to uvicorn and the app as
usual.

While the process drains (``chitram_falcon.shutdown``), every answer closes its connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chitram_falcon import drain
from chitram_falcon.security import header_lines

log = logging.getLogger(__name__)

SHUTDOWN_HEAD_WAIT = 2.0
"""Seconds a stopping server still waits for the request head of a connection it has accepted."""

_WAITING: dict[BoundedHttpToolsProtocol, float] = {}
"""Connections waiting for a request head and when their wait ends (``loop.time()``), the one
waiting longest first (dicts keep insertion order)."""

_sweeping: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}
"""The pending sweep of :data:`_WAITING` by event loop (one, while anyone waits)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    max_connections = 2048

    _head_timer: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The app's warm answers, when it has them (uvicorn's own wrappers of an app do not).
        self._now = getattr(self.app, "answer_now", None)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            oldest = next(iter(_WAITING), None)
            if oldest is None:  # every connection is inside a request: refuse this one
                self.transport.close()
                return
            oldest._close_waiting()
        self._await_head()

    def _await_head(self, seconds: float | None = None) -> None:
        # A deadline, not a timer per request: one sweep every quarter of the timeout (at
        # most a second) closes the connections past theirs.
        loop = self.loop
        _WAITING[self] = loop.time() + (self.header_timeout if seconds is None else seconds)
        if loop not in _sweeping:
            self._sweep_later()

    def _sweep_later(self) -> None:
        interval = min(1.0, self.header_timeout / 4)
        _sweeping[self.loop] = self.loop.call_later(interval, _sweep, self.loop)

    def _head_arrived(self) -> None:
        _WAITING.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _close_waiting(self) -> None:
        self._head_arrived()
        if not self.transport.is_closing():
            self.transport.close()

    def on_headers_complete(self) -> None:
        # Per request: the base class by name, not super() (which builds an object per call).
        _WAITING.pop(self, None)
        if self._head_timer is not None:
            self._head_arrived()
        cycle = self.cycle
        draining = drain.draining()
        if (
            (cycle is None or cycle.response_complete)
            and self.limit_concurrency is None
            and not self.flow.write_paused
            and not draining
            and self._answered_now()
        ):
            return
        HttpToolsProtocol.on_headers_complete(self)
        cycle = self.cycle
        if draining and cycle is not None and not cycle.response_complete:
            # Draining: this answer closes the connection, so the client's next request opens a
            # new one (through the load balancer, to another process) instead of racing our close.
            cycle.keep_alive = False

    def _answered_now(self) -> bool:
        """Write the app's warm answer (``ChitramApp.answer_now``) to the request whose head just
        arrived, before uvicorn finishes its scope and builds its request cycle; False when
        there is none (nothing written: uvicorn goes on as usual)."""
        now = self._now
        if now is None:
            return False
        parser = self.parser
        method = parser.get_method()
        if method not in _READ_METHODS or parser.should_upgrade():
            return False
        url = self.url
        if b"%" in url:  # uvicorn unquotes the path: its own
            return False
        parsed = httptools.parse_url(url)
        scope = self.scope
        # What uvicorn's on_headers_complete puts in the scope, so the app sees the same request.
        raw_path = parsed.path
        scope["method"] = _READ_METHODS[method]
        version = parser.get_http_version()
        if version != "1.1":
            scope["http_version"] = version
        scope["path"] = self.root_path + raw_path.decode("ascii")
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed.query or b""
        try:
            ready = now(scope)
        except Exception:  # raised in the parser's callback it would be a 400: the app answers
            log.exception("answering a warm read in the protocol failed")
            return False
        if ready is None:
            return False
        keep_alive = version != "1.0" and parser.should_keep_alive()
        self._write_now(method == b"HEAD", keep_alive, *ready)
        return True

    def _write_now(
        self,
        head_only: bool,
        keep_alive: bool,
        lines: bytes,
        rid: bytes,
        body: bytes,
        done: Any,
    ) -> None:
        """Write a whole 200 as ``RequestResponseCycle.send`` would, then finish the request."""
        if head_only:
            body = b""
        head = (
            _OK,
            _server_lines(self.server_state.default_headers),
            lines,
            rid,
            b"\r\n" if keep_alive else b"connection: close\r\n\r\n",
        )
        if len(body) > _COPY_LIMIT:
            # One system call either way (uvloop writes both buffers with writev), without
            # copying a large body behind the head first.
            self.transport.writelines((b"".join(head), body))
        else:
            self.transport.write(b"".join((*head, body)))
        self.cycle = _ANSWERED  # type: ignore[assignment]
        done(len(body))
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()

    def on_response_complete(self) -> None:
        if self.pipeline or self.transport.is_closing():
            # A pipelined request's head has arrived already, or the connection is closing:
            # uvicorn's own.
            HttpToolsProtocol.on_response_complete(self)
            return
        # uvicorn's, with the deadline for the next head in place of its keep-alive timer.
        self.server_state.total_requests += 1
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        self._await_head(min(self.header_timeout, self.timeout_keep_alive))

    def shutdown(self) -> None:
        """The server is stopping. A connection still waiting for a request head gets a last
        ``SHUTDOWN_HEAD_WAIT`` seconds for it (then that request is answered and the connection
        closed): closing it at once would reset a client whose request is already on its way,
        e.g. one the server accepted a moment ago."""
        if self in _WAITING:
            del _WAITING[self]  # its own, shorter wait now
            wait = min(self.header_timeout, SHUTDOWN_HEAD_WAIT)
            self._head_timer = self.loop.call_later(wait, self._close_waiting)
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)


def _sweep(loop: asyncio.AbstractEventLoop) -> None:
    """Close every connection whose request head is overdue; come back while any waits."""
    del _sweeping[loop]
    now = loop.time()
    overdue = []
    for connection, deadline in _WAITING.items():
        # Every one is looked at (at most ``max_connections``): an answered connection waits
        # less long than a new one, so the order of the waits is not that of their deadlines.
        if connection.loop is loop and deadline <= now:
            overdue.append(connection)
    for connection in overdue:
        connection._close_waiting()
    for connection in _WAITING:
        if connection.loop is loop:
            connection._sweep_later()
            break


_OK = b"HTTP/1.1 200 OK\r\n"
_READ_METHODS = {b"GET": "GET", b"HEAD": "HEAD"}


class _Answered:
    """The request cycle of a request the protocol answered itself: complete, so the parser's
    later callbacks for that request (a body, its end) and uvicorn's own checks pass it by.
    Of a complete cycle uvicorn reads only these two."""

    response_complete = True
    message_event = asyncio.Event()  # set by uvicorn when the connection is lost: no one waits


_ANSWERED = _Answered()
_COPY_LIMIT = 4096
"""Bodies up to this size are copied behind the head into one buffer; larger ones are written
as a second buffer of the same call (measured: ~1 µs less CPU per 20 KB /file)."""
_server_headers: tuple[object, bytes] = (None, b"")


def _server_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's own headers (``date``; ``server`` when on) as header lines, once per list (the
    server replaces the list every second)."""
    global _server_headers
    seen, lines = _server_headers
    if seen is not headers:
        lines = header_lines(headers) or b""  # uvicorn's names are lower-case already
        _server_headers = (headers, lines)
    return lines


def configure(settings: Any) -> type[BoundedHttpToolsProtocol]:
    """Set the bounds from ``Settings`` (in each worker process, as the app is built)."""
    BoundedHttpToolsProtocol.header_timeout = settings.header_timeout
    BoundedHttpToolsProtocol.max_connections = settings.max_connections
    return BoundedHttpToolsProtocol
