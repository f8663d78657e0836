"""The seam between Chitram and whatever watches it (Prometheus, OpenTelemetry, a test).

The SDK reports what happens through the one module-level :data:`observer`; by default it is an
:class:`Observer` whose methods do nothing, so the SDK depends on no metrics library and a call
costs a method lookup. ``chitram_core.metrics`` (extra ``metrics``) and ``chitram_core.tracing``
(extra ``otel``) install real ones with :func:`install`.

Labels are small closed sets (route templates, result names, error codes), never ids or paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

_NULL_CONTEXT = contextlib.nullcontext()


class Observer:
    """Every hook the SDK and the HTTP adapters call; each does nothing here."""

    enabled = False
    """True when someone listens: the SDK then does work it would otherwise skip (job counts)."""

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered (``route`` is the matched template)."""

    def upload(self, result: str) -> None:
        """One SDK upload finished: ``stored``, ``deduplicated`` or a lower-case error code."""

    def cache(self, result: str) -> None:
        """One metadata cache lookup: ``hit`` or ``miss``."""

    def image_work(self, op: str) -> AbstractContextManager[Any]:
        """Wraps one piece of image work (``verify``, ``strip``, ``thumbnail``...)."""
        return _NULL_CONTEXT

    def auth_provider(self, provider: str, state: str) -> None:
        """A provider's circuit is now ``closed``, ``half_open`` or ``open``."""

    def upload_slots(self, in_use: int, waiting: int, capacity: int) -> None:
        """Upload slots taken and waiters, in this process."""

    def jobs(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Background jobs by ``(kind, state)``, counted in the database (all processes)."""


class Fanout(Observer):
    """Several observers as one (metrics and tracing together)."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers
        self.enabled = any(o.enabled for o in observers)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        for o in self.observers:
            o.http_request(method, route, status, seconds)

    def upload(self, result: str) -> None:
        for o in self.observers:
            o.upload(result)

    def cache(self, result: str) -> None:
        for o in self.observers:
            o.cache(result)

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


class RequestSpan(Protocol):
    """A traced request (see ``chitram_core.tracing``)."""

    def activate(self) -> AbstractContextManager[Any]: ...

    def finish(self, method: str, route: str, status: int) -> None: ...


request_tracer: Callable[[Mapping[str, Any]], RequestSpan] | None = None
"""Set when tracing is on: makes the server span of one ASGI request from its scope."""

observer: Observer = Observer()
"""The current observer. Call hooks as ``observe.observer.upload(...)`` (looked up each time)."""

_installed: list[Observer] = []


def install(new: Observer) -> None:
    """Add an observer; from now on every hook reaches it too."""
    global observer
    _installed.append(new)
    observer = _installed[0] if len(_installed) == 1 else Fanout(list(_installed))


def uninstall(old: Observer) -> None:
    global observer
    if old in _installed:
        _installed.remove(old)
    if not _installed:
        observer = Observer()
    else:
        observer = _installed[0] if len(_installed) == 1 else Fanout(list(_installed))
