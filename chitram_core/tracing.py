"""OpenTelemetry tracing (extra ``otel``): spans for requests, SQL, Redis, outgoing HTTP and
image work.

Configured by the standard variables. Tracing is on when ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console``; ``none`` turns it off) or an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, unless ``OTEL_SDK_DISABLED=true``; the
exporter then reads its own ``OTEL_EXPORTER_OTLP_*`` settings, the resource reads
``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``, and sampling ``OTEL_TRACES_SAMPLER``.
:func:`observer_from_env` builds that observer; a host that set up its own tracer provider
calls :func:`observer` with it instead, and passes the result as ``Chitram(settings,
observer=...)``. The libraries' instrumentation (SQLAlchemy, Redis, httpx) is process-wide by
OpenTelemetry's design and is done once, by the first observer built.

SQL, Redis and httpx spans come from the OpenTelemetry instrumentation packages; request spans
(named ``<METHOD> <route template>``, with the W3C ``traceparent`` of the caller) and image-work
spans (``image.<op>``) are made here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from chitram_core import observe
from chitram_core.errors import ConfigurationError
from chitram_core.logs import request_id

log = logging.getLogger(__name__)

TRACER_NAME = "chitram"

_instrumented: list[Any] = []  # the provider the libraries were instrumented with, once
_instrumenting = threading.Lock()


def enabled_by_env(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters == "none":
        return False
    return bool(
        exporters
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _exporter(name: str) -> SpanExporter:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    raise ConfigurationError(
        f"OTEL_TRACES_EXPORTER: {name!r} is not supported here (otlp, console or none)"
    )


def observer_from_env() -> TracingObserver | None:
    """A tracing observer if the ``OTEL_*`` variables ask for tracing, else None.

    The first call sets OpenTelemetry's global tracer provider (its API has one per process);
    later calls reuse it."""
    if not enabled_by_env():
        return None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        if not os.environ.get("OTEL_SERVICE_NAME"):
            os.environ["OTEL_SERVICE_NAME"] = "chitram"
        provider = TracerProvider(resource=Resource.create())
        names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
        for name in (n.strip() for n in names.split(",") if n.strip()):
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
        trace.set_tracer_provider(provider)
    return observer(provider)


def observer(provider: Any) -> TracingObserver:
    """An observer tracing with ``provider`` (a ``TracerProvider``): request and image-work
    spans. The first call also instruments SQLAlchemy, Redis and httpx with ``provider``."""
    with _instrumenting:
        if not _instrumented:
            _instrument(provider)
            _instrumented.append(provider)
            log.info("OpenTelemetry tracing is on")
    return TracingObserver(provider.get_tracer(TRACER_NAME))


def _instrument(provider: Any) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The instrumentation declares SQLAlchemy < 2.1 but hooks only its stable engine events;
    # without skipping the check it silently instruments nothing on 2.1 (tested).
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    try:
        import redis  # noqa: F401 - only instrumented where the redis extra is installed
    except ImportError:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor().instrument(tracer_provider=provider)


class TracingObserver(observe.Observer):
    """Requests and image work as spans; the rest of the hooks are metrics' business."""

    traces_requests = True

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    def request_span(self, scope: Mapping[str, Any]) -> _RequestSpan:
        return _RequestSpan(self.tracer, scope)

    @contextlib.contextmanager
    def image_work(self, op: str) -> Iterator[None]:
        with self.tracer.start_as_current_span(f"image.{op}", attributes={"chitram.op": op}):
            yield


class _RequestSpan:
    def __init__(self, tracer: Any, scope: Mapping[str, Any]) -> None:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        method = scope.get("method", "GET")
        self.span = tracer.start_span(
            method,
            kind=SpanKind.SERVER,
            context=propagate.extract(carrier),
            attributes={
                "http.request.method": method,
                "url.path": scope.get("path", ""),
                "url.scheme": scope.get("scheme", "http"),
                "chitram.request_id": request_id.get() or "",
            },
        )

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        with trace.use_span(self.span, end_on_exit=False):
            yield

    def finish(self, method: str, route: str, status: int) -> None:
        self.span.update_name(f"{method} {route}")
        self.span.set_attribute("http.route", route)
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()
