"""Prometheus observers: one per Chitram instance, over the registry's one set of collectors."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry

from chitram_core import metrics


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
