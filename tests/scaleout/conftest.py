"""Fixtures for the scale-out tests: the shared services and a factory of real app processes.

Every test gets its own S3 prefix, its own Redis key prefix and an emptied PostgreSQL database,
so runs (and tests) never see each other's state. Processes a test starts are killed when it
ends, whatever happened; their logs are attached to the report of a failing test.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from serverkit import Cluster, Server, chitram

_SERVERS = pytest.StashKey[list[Server]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in item.stash.get(_SERVERS, []):
            title = f"log of {server.name} (port {server.port})"
            report.sections.append((title, server.log_text()))


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fresh_postgres_url: str,
    redis_url: str,
    moto_server: str,
    s3_bucket: str,
) -> Iterator[Cluster]:
    run = uuid.uuid4().hex[:12]
    prefix = f"scaleout-{run}"
    separator = "&" if "?" in redis_url else "?"
    cache_url = f"{redis_url}{separator}prefix=chitram-test-{run}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
    env.update(
        {
            "CHITRAM_DATA_DIR": str(tmp_path / "data"),
            "CHITRAM_DATABASE_URL": fresh_postgres_url,
            "CHITRAM_STORAGE_URL": f"s3://{s3_bucket}/{prefix}",
            "CHITRAM_STORAGE_OPTIONS": json.dumps(
                {"endpoint_url": moto_server, "key": "testing", "secret": "testing"}
            ),
            "CHITRAM_CACHE_URL": cache_url,
            "CHITRAM_UPLOAD_RATE_LIMIT": "off",
            "CHITRAM_AUTH_RATE_LIMIT": "off",
            "CHITRAM_WEB_UI": "false",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    # Auto-migrate is for SQLite only: a PostgreSQL deployment runs the migration first.
    chitram(["db", "upgrade"], env, tmp_path)
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    servers: list[Server] = []
    request.node.stash[_SERVERS] = servers
    try:
        yield Cluster(env, tmp_path, s3, s3_bucket, prefix, fresh_postgres_url, servers)
    finally:
        for server in servers:
            server.kill()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
