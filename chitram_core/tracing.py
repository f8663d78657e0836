"""OpenTelemetry tracing (extra ``otel``): spans for requests, SQL, Redis, outgoing HTTP and
image work.

Configured by the standard variables. Tracing is on when ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console``; ``none`` turns it off) or an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, unless ``OTEL_SDK_DISABLED=true``; the
exporter then reads its own ``OTEL_EXPORTER_OTLP_*`` settings, the resource reads
``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``, and sampling ``OTEL_TRACES_SAMPLER``.
A host that set up its own tracer provider calls :func:`setup` with it instead.

SQL, Redis and httpx spans come from the OpenTelemetry instrumentation packages; request spans
(named ``<METHOD> <route template>``, with the W3C ``traceparent`` of the caller) and image-work
spans (``image.<op>``) are made here.
"""

from __future__ import annotations

import contextlib
import logging
import os
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

_state: dict[str, Any] = {}


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


def setup_from_env() -> bool:
    """Turn tracing on if the ``OTEL_*`` variables ask for it; whether it is on."""
    if _state:
        return True
    if not enabled_by_env():
        return False
    if not os.environ.get("OTEL_SERVICE_NAME"):
        os.environ["OTEL_SERVICE_NAME"] = "chitram"
    provider = TracerProvider(resource=Resource.create())
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    for name in (n.strip() for n in names.split(",") if n.strip()):
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    setup(provider)
    return True


def setup(provider: Any) -> None:
    """Trace with ``provider`` (a ``TracerProvider``): instrument SQLAlchemy, Redis and httpx,
    and make request and image-work spans. Once per process."""
    if _state:
        return
    tracer = provider.get_tracer(TRACER_NAME)
    _state["tracer"] = tracer
    _state["provider"] = provider
    _instrument(provider)
    observe.request_tracer = lambda scope: _RequestSpan(tracer, scope)
    observe.install(TracingObserver(tracer))
    log.info("OpenTelemetry tracing is on")


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
    """Image work as spans; the rest of the hooks are metrics' business."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

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
