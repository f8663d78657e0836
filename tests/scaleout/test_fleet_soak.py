"""The fleet soak harness (``benchmarks/soak.py``), shortened: 2 API processes that only record
jobs and 2 ``chitram worker`` processes on PostgreSQL + S3 (moto) + Redis of its own, mixed
traffic while a worker is SIGKILLed mid-job, an API process gets SIGTERM, Redis is stopped,
every PostgreSQL connection is terminated and S3 is frozen. The harness checks no 500, errors
only inside fault windows, every job done and every stored object accounted for; this test
runs it and fails with its report."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SECONDS = os.environ.get("CHITRAM_FLEET_SOAK_SECONDS", "30")
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get(
    "CHITRAM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def require(what: str, available: bool) -> None:
    """Skip without it, or fail under CI=true (integration services must be there)."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} (CI=true: integration services must run)")
    pytest.skip(what)


def postgres_listens() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def test_the_fleet_survives_the_faults_of_a_short_soak(tmp_path: Path) -> None:
    require("PostgreSQL is not reachable at 127.0.0.1:5432", postgres_listens())
    require(
        "redis-server is not installed (the soak starts and stops its own)",
        shutil.which("redis-server") is not None,
    )
    pytest.importorskip("moto.server")
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--seconds",
            SECONDS,
            "--clients",
            "4",
            "--postgres",
            POSTGRES_URL,
            "--workdir",
            str(tmp_path / "run"),
            "--json",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert report_path.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["ok"], json.dumps(report, indent=2) + done.stderr[-6000:]
    assert done.returncode == 0
    assert report["server_errors_500"] == 0
    assert len(report["faults"]) == 5
    assert report["counts"].get("upload 201", 0) > 0
    assert report["facts"]["jobs_after"].get("running", 0) == 0
