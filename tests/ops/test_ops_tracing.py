"""OpenTelemetry (extra ``otel``): spans for requests, SQL, Redis, outgoing HTTP, image work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from chitram_core.tracing import enabled_by_env

HERE = Path(__file__).parent
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.redis
def test_spans_for_requests_sql_redis_outgoing_http_and_image_work(
    tmp_path: Path, redis_url: str
) -> None:
    cache_url = f"{redis_url}?prefix=chitram-otel-{uuid.uuid4().hex}:"
    result = subprocess.run(
        [sys.executable, str(HERE / "otel_probe.py"), str(tmp_path), cache_url],
        cwd=HERE,
        # The caller's PYTHONPATH kept last: a source tree under test is the one imported.
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), _path()])},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    spans: list[dict[str, Any]] = [json.loads(line) for line in result.stdout.splitlines()]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)

    upload = by_name["POST /api/v1/images/upload"][0]
    assert upload["kind"] == "SERVER"
    assert upload["trace_id"] == TRACE_ID  # the caller's traceparent is continued
    assert upload["attributes"]["http.route"] == "/api/v1/images/upload"
    assert upload["attributes"]["http.response.status_code"] == "201"
    assert by_name["GET /api/v1/images/{image_id}"][0]["kind"] == "SERVER"
    assert "GET /api/v1/images/{image_id}/thumbnail" in by_name

    in_upload = [s for s in spans if s["trace_id"] == TRACE_ID]
    names = {s["name"] for s in in_upload}
    assert "image.verify" in names
    sql = [s for s in in_upload if s["kind"] == "CLIENT" and _is_sql(s)]
    assert sql, names
    assert any(s["name"] == "image.thumbnail" for s in spans)
    redis = [s for s in spans if "redis" in json.dumps(s["attributes"]).lower()]
    assert redis, sorted({s["name"] for s in spans})
    outgoing = [
        s for s in spans if s["kind"] == "CLIENT" and "/ping" in json.dumps(s["attributes"])
    ]
    assert len(outgoing) == 1 and outgoing[0]["name"] in {"GET", "HTTP GET"}


def _is_sql(span: dict[str, Any]) -> bool:
    attributes = span["attributes"]
    return attributes.get("db.system") == "sqlite" or attributes.get("db.system.name") == "sqlite"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_is_on_only_when_the_otel_variables_ask(environ: dict[str, str], on: bool) -> None:
    assert enabled_by_env(environ) is on


def _path() -> str:
    return os.environ.get("PYTHONPATH", "")
