"""Prometheus metrics (extra ``metrics``: prometheus-client), recorded by an observer.

``Chitram(settings, observer=metrics.observer())`` records an instance's metrics.

Works in one process and under ``chitram serve --workers N``: the command points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker imports prometheus-client,
every worker writes its values there, and :func:`serve_metrics` in the parent adds them up at
scrape time. Gauges say how to add up: slots are summed over live workers, a provider is up only
if every worker sees it up, job counts come from the shared database (the latest report wins).

Import this module only when metrics are wanted: importing prometheus-client reads
``PROMETHEUS_MULTIPROC_DIR`` once.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from threading import Thread
from time import perf_counter
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client import multiprocess as _multiprocess

from chitram_core import observe

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WORK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BREAKER = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _Metrics:
    """Every metric in docs/operations.md, registered once in a registry."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.http_requests = Counter(
            "chitram_http_requests_total",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "chitram_http_request_duration_seconds",
            "Time from the request's arrival to the last byte of its answer",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.uploads = Counter(
            "chitram_uploads_total",
            "SDK uploads by result: stored, deduplicated, or the lower-case error code",
            ["result"],
            registry=r,
        )
        self.resumable = Counter(
            "chitram_resumable_uploads_total",
            "Resumable uploads by event: created, finished, cancelled, expired, refused, or the "
            "lower-case error code of a refused chunk",
            ["event"],
            registry=r,
        )
        self.resumable_bytes = Counter(
            "chitram_resumable_bytes_total",
            "Bytes of resumable-upload chunks stored",
            registry=r,
        )
        self.resumable_chunks = Counter(
            "chitram_resumable_chunks_total",
            "Resumable-upload chunks stored",
            registry=r,
        )
        self.cache_requests = Counter(
            "chitram_cache_requests_total",
            "Image metadata cache lookups by result (hit, miss)",
            ["result"],
            registry=r,
        )
        self.image_work_seconds = Histogram(
            "chitram_image_work_seconds",
            "Image work (verify, strip, thumbnail...) from asking to done, waiting included",
            ["op"],
            buckets=WORK_BUCKETS,
            registry=r,
        )
        self.image_work_in_progress = Gauge(
            "chitram_image_work_in_progress",
            "Image work asked for and not finished (queued or running)",
            ["op"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.jobs_gauge = Gauge(
            "chitram_jobs",
            "Background jobs in the database by kind and state",
            ["kind", "state"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.auth_up = Gauge(
            "chitram_auth_provider_up",
            "1 while the provider's circuit is not open (in every worker), else 0",
            ["provider"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.breaker_state = Gauge(
            "chitram_auth_breaker_state",
            "The provider's circuit: 0 closed, 1 half-open, 2 open (worst worker)",
            ["provider"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.slots_in_use = Gauge(
            "chitram_upload_slots_in_use",
            "Upload slots held (summed over workers)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.slots_waiting = Gauge(
            "chitram_upload_slots_waiting",
            "Uploads waiting for a slot (summed over workers)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.slots_capacity = Gauge(
            "chitram_upload_slots_capacity",
            "Upload slots in all (summed over workers)",
            registry=r,
            multiprocess_mode="livesum",
        )


class PrometheusObserver(observe.Observer):
    """Records the metrics from the observer hooks.

    The collectors are registered once per registry (``REGISTRY`` by default, process-wide by
    Prometheus's design) and shared: every observer on one registry, one per Chitram instance,
    adds to the same series, and a second one registers nothing twice.
    """

    enabled = True

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.metrics = _registered(registry)
        for result in ("stored", "deduplicated"):
            self.metrics.uploads.labels(result)  # present at 0 before the first upload
        for result in ("hit", "miss"):
            self.metrics.cache_requests.labels(result)
        # Labelled children, cached: ``labels()`` takes a lock and builds a tuple each time.
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._seen_jobs: set[tuple[str, str]] = set()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._http.get(key)
        if children is None:
            children = (
                self.metrics.http_requests.labels(method, route, str(status)),
                self.metrics.http_duration.labels(method, route),
            )
            self._http[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def upload(self, result: str) -> None:
        self.metrics.uploads.labels(result).inc()

    def cache(self, result: str) -> None:
        self.metrics.cache_requests.labels(result).inc()

    def resumable(self, event: str) -> None:
        self.metrics.resumable.labels(event).inc()

    def resumable_bytes(self, size: int) -> None:
        self.metrics.resumable_bytes.inc(size)
        self.metrics.resumable_chunks.inc()

    @contextmanager
    def image_work(self, op: str) -> Iterator[None]:
        gauge = self.metrics.image_work_in_progress.labels(op)
        gauge.inc()
        started = perf_counter()
        try:
            yield
        finally:
            gauge.dec()
            self.metrics.image_work_seconds.labels(op).observe(perf_counter() - started)

    def auth_provider(self, provider: str, state: str) -> None:
        self.metrics.auth_up.labels(provider).set(0.0 if state == "open" else 1.0)
        self.metrics.breaker_state.labels(provider).set(_BREAKER.get(state, 2.0))

    def upload_slots(self, in_use: int, waiting: int, capacity: int) -> None:
        self.metrics.slots_in_use.set(in_use)
        self.metrics.slots_waiting.set(waiting)
        self.metrics.slots_capacity.set(capacity)

    def jobs(self, counts: Mapping[tuple[str, str], int]) -> None:
        # A state that emptied reads 0 rather than keeping its last count.
        for key in self._seen_jobs - set(counts):
            self.metrics.jobs_gauge.labels(*key).set(0)
        for key, value in counts.items():
            self.metrics.jobs_gauge.labels(*key).set(value)
        self._seen_jobs |= set(counts)


_REGISTERED: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()
_REGISTERING = threading.Lock()


def _registered(registry: CollectorRegistry) -> _Metrics:
    """The registry's collectors, registered at the first call for it."""
    with _REGISTERING:
        found = _REGISTERED.get(registry)
        if found is None:
            found = _REGISTERED[registry] = _Metrics(registry)
        return found


def observer(registry: CollectorRegistry = REGISTRY) -> PrometheusObserver:
    """An observer recording Chitram's metrics: pass it as ``Chitram(settings, observer=...)``.

    Each call makes a new observer over the registry's one set of collectors, so several
    instances in a process can each have one (their counts add up in the same series)."""
    return PrometheusObserver(registry)


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); ValueError naming what is wrong."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", text.strip())
    if not m:
        raise ValueError(f"expected host:port (e.g. 127.0.0.1:9464), got {text!r}")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"the port must be 1..65535, got {port}")
    return host, port


class _LiveMultiProcessCollector(_multiprocess.MultiProcessCollector):
    """Drops the live-gauge files of workers that died, then adds up what is left."""

    def collect(self) -> Any:
        for path in Path(self._path).glob("gauge_live*_*.db"):
            pid = path.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                _multiprocess.mark_process_dead(int(pid), self._path)  # type: ignore[no-untyped-call]
        return super().collect()  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: every worker's files in multiprocess mode, else this process."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    registry = CollectorRegistry()
    _LiveMultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    return registry


def serve_metrics(address: str) -> tuple[Any, Thread]:
    """Serve ``/metrics`` on ``address`` from a daemon thread; ``(server, thread)``.

    Stop with ``server.shutdown(); server.server_close()``.
    """
    host, port = parse_address(address)
    server, thread = start_http_server(port, addr=host, registry=scrape_registry())
    return server, thread
