"""``chitram serve``'s shutdown: drain, stop accepting without resets, finish, exit.

:class:`DrainingServer` is the uvicorn server ``chitram serve`` runs. On SIGTERM it first drains
for ``CHITRAM_SHUTDOWN_DRAIN`` seconds: ``/health/ready`` answers 503 (a load balancer takes the
process out of rotation) while every request is still served, each answer closing its
connection. Then it stops accepting without resetting the connections the kernel had already
accepted, lets in-flight requests finish within ``CHITRAM_SHUTDOWN_GRACE`` and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import socket
import struct
import sys
import time
from types import FrameType
from typing import Any

import uvicorn

from chitram_falcon import drain

log = logging.getLogger("chitram_falcon")


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain before its graceful shutdown.

    The first SIGTERM starts the drain (:mod:`chitram_falcon.drain`) for ``drain`` seconds, then
    shuts down as uvicorn does; a second SIGTERM, or SIGINT (Ctrl-C), ends the drain at once.
    """

    def __init__(self, config: uvicorn.Config, drain_seconds: float = 0.0) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._drain_ends: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = self._drain_ends is None and not self.should_exit
        if sig == signal.SIGTERM and first and self.started and self.drain_seconds > 0:
            self._captured_signals.append(sig)  # re-raised after the shutdown, as uvicorn does
            drain.start()
            self._drain_ends = time.monotonic() + self.drain_seconds
            log.info(
                "SIGTERM received: draining for %g s (readiness answers 503), then stopping",
                self.drain_seconds,
            )
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_ends is not None and time.monotonic() >= self._drain_ends:
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drain.start()
        if not self.force_exit:
            await stop_accepting_gently([s for server in self.servers for s in server.sockets])
        await super().shutdown(sockets)


async def stop_accepting_gently(listeners: list[Any], within: float = 2.0) -> None:
    """Before the listening sockets close: have the kernel drop new connection attempts, then
    accept every connection it had already completed (its accept queue), so that closing the
    listener resets none of them. A client whose attempt was dropped retries, finds the port
    closed and gets "connection refused" before it has sent a byte.

    Linux only (a socket filter, and ``TCP_INFO`` for the queue's length); elsewhere, nothing:
    the close resets what is queued, as any server's does.
    """
    if not sys.platform.startswith("linux"):
        return
    watched = [sock for sock in listeners if _drop_new_connections(sock)]
    deadline = time.monotonic() + within
    while watched and time.monotonic() < deadline:
        if not any(_accept_queue(sock) for sock in watched):
            return
        await asyncio.sleep(0.01)  # the event loop accepts meanwhile


_SO_ATTACH_FILTER = 26
_DROP_ALL = struct.pack("=HBBI", 0x06, 0, 0, 0)  # one classic BPF instruction: "ret #0"


def _drop_new_connections(sock: Any) -> bool:
    program = ctypes.create_string_buffer(_DROP_ALL)
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        log.debug("cannot filter the listener: %s", exc)
        return False
    return True


def _accept_queue(sock: Any) -> int:
    """Connections completed by the kernel and not yet accepted (``tcpi_unacked`` of a
    listening socket)."""
    with contextlib.suppress(OSError):
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return int(struct.unpack_from("=I", info, 24)[0])
    return 0
