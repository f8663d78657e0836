"""The runbook and the Grafana dashboard use the metric names the code really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from chitram_core.metrics import PrometheusObserver

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bchitram_[a-z_]+\b")


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry)
    observer.http_request("GET", "/x", 200, 0.01)
    observer.upload("stored")
    observer.cache("hit")
    with observer.image_work("verify"):
        pass
    observer.auth_provider("local", "closed")
    observer.upload_slots(0, 0, 10)
    observer.jobs({("thumbnail", "ready"): 1})
    names = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads((ROOT / "examples" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in NAME.findall(expr)}
    assert used and used <= exported_names(), used - exported_names()


def test_every_metric_the_runbook_names_is_exported_and_the_required_ones_are_there() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    used = set(NAME.findall(text))
    exported = exported_names()
    metric_like = {n for n in used if not n.startswith(("chitram_core", "chitram_falcon"))}
    assert metric_like <= exported, metric_like - exported
    required = {
        "chitram_http_requests_total",
        "chitram_http_request_duration_seconds",
        "chitram_uploads_total",
        "chitram_cache_requests_total",
        "chitram_jobs",
        "chitram_image_work_seconds",
        "chitram_auth_provider_up",
    }
    assert required <= used and required <= exported
