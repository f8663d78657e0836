"""The seam between Chitram and whatever watches it (Prometheus, OpenTelemetry, a test).

Each :class:`~chitram_core.Chitram` reports what happens to its own observer
(``Chitram(settings, observer=...)``, then ``chitram.observer``), which it hands to every part
it builds; by default an :class:`Observer` whose methods do nothing, so the SDK depends on no
metrics library and a call costs a method lookup. ``chitram_core.metrics`` (extra ``metrics``)
and ``chitram_core.tracing`` (extra ``otel``) build real ones; :func:`combine` makes several one.
Nothing here is process-wide: two instances in one process each see only their own events.

Labels are small closed sets (route templates, result names, error codes), never ids or paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

_NULL_CONTEXT = contextlib.nullcontext()


class Observer:
    """Every hook the SDK and the HTTP adapters call; each does nothing here."""

    enabled = False
    """True when someone listens: the SDK then does work it would otherwise skip (job counts)."""

    traces_requests = False
    """True when :meth:`request_span` makes spans (a server may answer a request without an
    ASGI call only when it is False)."""

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered (``route`` is the matched template)."""

    def upload(self, result: str) -> None:
        """One SDK upload finished: ``stored``, ``deduplicated`` or a lower-case error code."""

    def cache(self, result: str) -> None:
        """One metadata cache lookup: ``hit`` or ``miss``."""

    def resumable(self, event: str) -> None:
        """A resumable upload ``created``, ``finished``, ``cancelled``, ``expired``, ``refused``
        at creation, or a chunk refused (the lower-case error code)."""

    def resumable_bytes(self, size: int) -> None:
        """One chunk of a resumable upload stored (its size in bytes)."""

    def image_work(self, op: str) -> AbstractContextManager[Any]:
        """Wraps one piece of image work (``verify``, ``strip``, ``thumbnail``...)."""
        return _NULL_CONTEXT

    def auth_provider(self, provider: str, state: str) -> None:
        """A provider's circuit is now ``closed``, ``half_open`` or ``open``."""

    def upload_slots(self, in_use: int, waiting: int, capacity: int) -> None:
        """Upload slots taken and waiters, in this process."""

    def jobs(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Background jobs by ``(kind, state)``, counted in the database (all processes)."""

    def request_span(self, scope: Mapping[str, Any]) -> RequestSpan | None:
        """The server span of one ASGI request (from its scope) when this observer traces
        requests; None otherwise (the HTTP adapter then makes none)."""
        return None


class Fanout(Observer):
    """Several observers as one (metrics and tracing together)."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = list(observers)
        self.enabled = any(o.enabled for o in observers)
        self.traces_requests = any(o.traces_requests for o in observers)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        for o in self.observers:
            o.http_request(method, route, status, seconds)

    def upload(self, result: str) -> None:
        for o in self.observers:
            o.upload(result)

    def cache(self, result: str) -> None:
        for o in self.observers:
            o.cache(result)

    def resumable(self, event: str) -> None:
        for o in self.observers:
            o.resumable(event)

    def resumable_bytes(self, size: int) -> None:
        for o in self.observers:
            o.resumable_bytes(size)

    @contextlib.contextmanager
    def image_work(self, op: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for o in self.observers:
                stack.enter_context(o.image_work(op))
            yield

    def auth_provider(self, provider: str, state: str) -> None:
        for o in self.observers:
            o.auth_provider(provider, state)

    def upload_slots(self, in_use: int, waiting: int, capacity: int) -> None:
        for o in self.observers:
            o.upload_slots(in_use, waiting, capacity)

    def jobs(self, counts: Mapping[tuple[str, str], int]) -> None:
        for o in self.observers:
            o.jobs(counts)

    def request_span(self, scope: Mapping[str, Any]) -> RequestSpan | None:
        """The first observer's span that makes one (one server span per request)."""
        for o in self.observers:
            span = o.request_span(scope)
            if span is not None:
                return span
        return None


class RequestSpan(Protocol):
    """A traced request (see ``chitram_core.tracing``)."""

    def activate(self) -> AbstractContextManager[Any]: ...

    def finish(self, method: str, route: str, status: int) -> None: ...


def combine(observers: Sequence[Observer]) -> Observer:
    """One observer for ``observers``: a do-nothing one for none, itself for one, else a
    :class:`Fanout`."""
    if not observers:
        return Observer()
    if len(observers) == 1:
        return observers[0]
    return Fanout(observers)
