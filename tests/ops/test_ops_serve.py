"""``chitram serve`` as operators run it: JSON lines, request ids, the metrics listener."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from netkit import free_port
from opskit import Serve, bearer, chitram, clean_env, jpeg_bytes, png_bytes, register
from prometheus_client.parser import text_string_to_metric_families

REQUIRED = {"timestamp", "level", "logger", "message", "request_id"}

REQUIRED_METRICS = {
    "chitram_http_requests",  # the parser drops _total from counter family names
    "chitram_http_request_duration_seconds",
    "chitram_uploads",
    "chitram_cache_requests",
    "chitram_jobs",
    "chitram_image_work_seconds",
    "chitram_auth_provider_up",
}


def scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on the listener, parsed by prometheus_client's own parser."""
    text = httpx.get(f"http://{address}/metrics", timeout=10).text
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    samples[("__families__", ())] = 0.0
    scrape.families = families  # type: ignore[attr-defined]
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_json_logs_request_ids_and_metrics_under_serve(tmp_path: Path, workers: int) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = clean_env(
        CHITRAM_LOG_FORMAT="json",
        CHITRAM_METRICS_ADDRESS=address,
        CHITRAM_METRICS_INTERVAL="0.2",
    )
    server = Serve(tmp_path, env, "--workers", str(workers))
    try:
        server.wait_ready()
        base = server.url
        deadline = time.monotonic() + 60
        # Every worker has opened its instance once the capacities it reported add up.
        while value(scrape(address), "chitram_upload_slots_capacity") != 10 * workers:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.2)
        for i in range(7):
            resp = httpx.get(f"{base}/health/live", headers={"X-Request-ID": f"live-{i}"})
            assert resp.headers["x-request-id"] == f"live-{i}"
        assert httpx.get(f"{base}/metrics").status_code == 404  # not on the API port
        auth = bearer(register(base, "ops@example.com"))
        first, other = jpeg_bytes(), png_bytes()
        ids = []
        for n, data in enumerate([first, first, other]):
            resp = httpx.post(
                f"{base}/api/v1/images/upload",
                files={"file": (f"{n}.img", data, "application/octet-stream")},
                headers={**auth, "X-Request-ID": f"upload-{n}"},
                timeout=30,
            )
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        for _ in range(2):
            assert httpx.get(f"{base}/api/v1/images/{ids[0]}").status_code == 200
        for image_id in (ids[0], ids[2]):
            assert (
                httpx.get(f"{base}/api/v1/images/{image_id}/thumbnail", timeout=30).status_code
                == 200
            )

        deadline = time.monotonic() + 30
        while True:  # job counts are refreshed every CHITRAM_METRICS_INTERVAL
            samples = scrape(address)
            if value(samples, "chitram_jobs", kind="thumbnail", state="ready") == 2:
                break
            assert time.monotonic() < deadline, samples
            time.sleep(0.2)
        assert scrape.families >= REQUIRED_METRICS  # type: ignore[attr-defined]
        get_live = {"method": "GET", "route": "/health/live"}
        assert value(samples, "chitram_http_requests_total", status="200", **get_live) == 7
        assert value(samples, "chitram_http_request_duration_seconds_count", **get_live) == 7
        assert (
            value(samples, "chitram_http_request_duration_seconds_bucket", le="+Inf", **get_live)
            == 7
        )
        assert (
            value(
                samples,
                "chitram_http_requests_total",
                method="POST",
                route="/api/v1/images/upload",
                status="201",
            )
            == 3
        )
        assert (
            value(
                samples,
                "chitram_http_requests_total",
                method="GET",
                route="<unmatched>",
                status="404",
            )
            == 1
        )
        assert value(samples, "chitram_uploads_total", result="stored") == 2
        assert value(samples, "chitram_uploads_total", result="deduplicated") == 1
        assert value(samples, "chitram_image_work_seconds_count", op="verify") == 3
        # The thumbnails were rendered in the uploads' own (verify) jobs: no thumbnail work.
        assert value(samples, "chitram_image_work_seconds_count", op="thumbnail") == 0
        assert value(samples, "chitram_image_work_in_progress", op="verify") == 0
        assert value(samples, "chitram_jobs", kind="thumbnail", state="pending") == 0
        assert value(samples, "chitram_auth_provider_up", provider="local") == 1
        assert value(samples, "chitram_auth_breaker_state", provider="local") == 0
        assert value(samples, "chitram_upload_slots_capacity") == 10 * workers
        assert value(samples, "chitram_upload_slots_in_use") == 0
        # Metadata reads: the cache counters move exactly as the X-Cache answers say.
        before = samples
        answers = [httpx.get(f"{base}/api/v1/images/{ids[1]}").headers["x-cache"] for _ in range(3)]
        after = scrape(address)
        for result in ("hit", "miss"):
            moved = value(after, "chitram_cache_requests_total", result=result) - value(
                before, "chitram_cache_requests_total", result=result
            )
            assert moved == answers.count(result.upper()), answers
        if workers == 1:  # the in-process cache: a miss fills it, then hits
            assert answers == ["MISS", "HIT", "HIT"]
        else:  # several workers without Redis: the metadata cache is off
            assert answers == ["DISABLED"] * 3
    finally:
        server.stop()

    lines = server.lines()
    entries = []
    for line in lines:
        entry = json.loads(line)  # every line the command wrote is one JSON object
        assert set(entry) >= REQUIRED, line
        entries.append(entry)
    assert any(e["logger"] == "uvicorn.error" for e in entries)  # uvicorn's lines too
    assert not any(e["logger"].startswith("alembic") for e in entries)
    accesses = [e for e in entries if e["logger"] == "chitram_falcon.access"]
    for i in range(7):
        mine = [e for e in accesses if e["request_id"] == f"live-{i}"]
        assert len(mine) == 1 and mine[0]["route"] == "/health/live"
    for n in range(3):
        mine = [e for e in entries if e["request_id"] == f"upload-{n}"]
        assert [e["logger"] for e in mine] == ["chitram_falcon.access"]
        assert mine[0]["status"] == 201
    assert not any(e["logger"] == "uvicorn.access" for e in entries)


@pytest.mark.slow
@pytest.mark.parametrize("access_log", ["true", "false"])
def test_text_logs_have_one_access_line_per_request_and_no_alembic_noise(
    tmp_path: Path, access_log: str
) -> None:
    server = Serve(tmp_path, clean_env(CHITRAM_ACCESS_LOG=access_log))
    try:
        server.wait_ready()
        for _ in range(3):
            httpx.get(f"{server.url}/health/live", headers={"X-Request-ID": "plain-1"})
    finally:
        server.stop()
    lines = server.lines()
    mine = [line for line in lines if "[plain-1]" in line]
    assert len(mine) == (3 if access_log == "true" else 0), lines
    assert all("chitram_falcon.access" in line and "GET /health/live 200" in line for line in mine)
    assert not any('"GET /health/live HTTP/1.1"' in line for line in lines)  # uvicorn's access log
    assert not any("alembic" in line for line in lines), lines
    assert any("Application startup complete" in line for line in lines)  # INFO still logged


def test_a_bad_metrics_address_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = chitram(["serve"], tmp_path, clean_env(CHITRAM_METRICS_ADDRESS="nine-four-six-four"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "CHITRAM_METRICS_ADDRESS" in result.stderr


def test_a_metrics_address_in_use_refuses_to_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = chitram(
            ["serve", "--port", str(free_port())],
            tmp_path,
            clean_env(CHITRAM_METRICS_ADDRESS=f"127.0.0.1:{port}", CHITRAM_LOG_FORMAT="json"),
        )
    assert result.returncode == 2, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert "CHITRAM_METRICS_ADDRESS" in line["message"] and line["level"] == "ERROR"
