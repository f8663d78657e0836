"""The docs match the code: the runbook and the Grafana dashboard use the metric names the code
really exports, and docs/http-api.md lists every route and every error code there is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import falcon.inspect
from prometheus_client import CollectorRegistry

from chitram_core import Settings
from chitram_core.errors import ERRORS_BY_CODE
from chitram_core.metrics import PrometheusObserver
from chitram_falcon.app import create_app

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bchitram_[a-z_]+\b")


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry)
    observer.http_request("GET", "/x", 200, 0.01)
    observer.upload("stored")
    observer.cache("hit")
    observer.resumable("created")
    observer.resumable_bytes(1)
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


# docs/http-api.md -----------------------------------------------------------------------------

HTTP_API = ROOT / "docs" / "http-api.md"
ROUTE_ROW = re.compile(r"^\|\s*([A-Z]+(?:,\s*[A-Z]+)*)\s*\|\s*`(/[^`]*)`\s*\|", re.MULTILINE)
CODE_ROW = re.compile(r"^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|", re.MULTILINE)


def documented_routes() -> set[tuple[str, str]]:
    """(method, path) of every row of the route tables: ``| GET, HEAD | `/path` | ...``."""
    text = HTTP_API.read_text()
    return {
        (method.strip(), path)
        for methods, path in ROUTE_ROW.findall(text)
        for method in methods.split(",")
    }


def test_the_http_api_doc_lists_exactly_the_routes_of_the_app(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="docs-test-" + "x" * 32)
    app = create_app(settings=settings, web_ui=False)
    served = {
        (method.method, route.path)
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }
    documented = documented_routes()
    assert len(served) > 20
    assert served - documented == set(), "routes the app serves that docs/http-api.md lacks"
    assert documented - served == set(), "routes docs/http-api.md lists that the app lacks"


def test_the_http_api_doc_lists_every_error_code_with_its_status() -> None:
    documented = {code: int(status) for code, status in CODE_ROW.findall(HTTP_API.read_text())}
    expected = {code: cls.status for code, cls in ERRORS_BY_CODE.items()}
    assert documented == expected
