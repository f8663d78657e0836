"""Slow clients bounded at the connection: ``chitram serve``'s HTTP protocol for uvicorn.

uvicorn (with httptools) has a keep-alive timeout but no limit on how long a request head may
take, and accepts connections without bound. :class:`BoundedHttpToolsProtocol` adds both:

- a connection must send a whole request head within ``header_timeout`` seconds of being
  accepted, and each next head within ``header_timeout`` of its previous answer; otherwise it
  is closed (a half-sent head holds a descriptor for at most that long);
- at most ``max_connections`` are open in the process: a new one closes the connection that has
  waited longest for its request head; when every connection is inside a request, the new one
  is closed at once. A flood of half-sent heads therefore never locks out a client that sends
  its head at once.

Request bodies are bounded in the app (``CHITRAM_BODY_IDLE_TIMEOUT``: ``chitram_falcon.asgi``),
on any server.

While the process drains (``chitram_falcon.shutdown``), every answer closes its connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chitram_falcon import drain

SHUTDOWN_HEAD_WAIT = 2.0
"""Seconds a stopping server still waits for the request head of a connection it has accepted."""

_WAITING: dict[BoundedHttpToolsProtocol, None] = {}
"""Connections waiting for a request head, oldest first (dicts keep insertion order)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    max_connections = 2048

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            oldest = next(iter(_WAITING), None)
            if oldest is None:  # every connection is inside a request: refuse this one
                self.transport.close()
                return
            oldest._close_waiting()
        self._await_head()

    def _await_head(self) -> None:
        _WAITING[self] = None
        self._head_timer = self.loop.call_later(self.header_timeout, self._close_waiting)

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
        self._head_arrived()
        super().on_headers_complete()
        if drain.draining() and self.cycle is not None:
            # Draining: this answer closes the connection, so the client's next request opens a
            # new one (through the load balancer, to another process) instead of racing our close.
            self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # a pipelined request's head has arrived already
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_head()

    def shutdown(self) -> None:
        """The server is stopping. A connection still waiting for a request head gets a last
        ``SHUTDOWN_HEAD_WAIT`` seconds for it (then that request is answered and the connection
        closed): closing it at once would reset a client whose request is already on its way,
        e.g. one the server accepted a moment ago."""
        if self in _WAITING:
            if self._head_timer is not None:
                self._head_timer.cancel()
            wait = min(self.header_timeout, SHUTDOWN_HEAD_WAIT)
            self._head_timer = self.loop.call_later(wait, self._close_waiting)
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)


def configure(settings: Any) -> type[BoundedHttpToolsProtocol]:
    """Set the bounds from ``Settings`` (in each worker process, as the app is built)."""
    BoundedHttpToolsProtocol.header_timeout = settings.header_timeout
    BoundedHttpToolsProtocol.max_connections = settings.max_connections
    return BoundedHttpToolsProtocol
