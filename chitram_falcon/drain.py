"""Whether this process is draining: it was asked to stop and tells load balancers so.

``chitram serve`` starts the drain on SIGTERM (``chitram_falcon.serving.DrainingServer``):
``/health/ready`` answers 503 ``{"status": "draining"}`` and every answer closes its connection,
while requests are still served, for ``CHITRAM_SHUTDOWN_DRAIN`` seconds; then the server stops
accepting. One flag per process: a process serving several apps drains them all.
"""

from __future__ import annotations

import time

_started: float | None = None


def start() -> None:
    """Mark this process as draining (idempotent)."""
    global _started
    if _started is None:
        _started = time.monotonic()


def draining() -> bool:
    """True once :func:`start` has been called in this process."""
    return _started is not None


def reset() -> None:
    """Not draining (a server started again in the same process)."""
    global _started
    _started = None
