"""Prometheus observers: one per Chitram instance, over the registry's one set of collectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from chitram_core import Settings, metrics
from chitram_core.observe import Observer
from chitram_falcon.cli import build_observer


def test_observers_on_one_registry_share_its_collectors() -> None:
    registry = CollectorRegistry()
    first = metrics.observer(registry)
    second = metrics.observer(registry)  # registering twice would raise "Duplicated timeseries"
    assert first is not second
    assert first.metrics is second.metrics
    first.upload("stored")
    second.upload("stored")
    assert registry.get_sample_value("chitram_uploads_total", {"result": "stored"}) == 2


def test_the_default_registry_is_registered_once() -> None:
    assert metrics.observer().metrics is metrics.observer(REGISTRY).metrics


def test_another_registry_has_its_own_collectors() -> None:
    one, other = CollectorRegistry(), CollectorRegistry()
    metrics.observer(one).cache("hit")
    assert one.get_sample_value("chitram_cache_requests_total", {"result": "hit"}) == 1
    assert metrics.observer(other).metrics is not metrics.observer(one).metrics
    assert other.get_sample_value("chitram_cache_requests_total", {"result": "hit"}) == 0


def test_the_command_builds_the_served_instances_observer_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    off = build_observer(Settings(env="test", data_dir=tmp_path))
    assert type(off) is Observer
    on = build_observer(Settings(env="test", data_dir=tmp_path, metrics_address="127.0.0.1:9"))
    assert isinstance(on, metrics.PrometheusObserver)
