"""/openapi.json describes what the app really does: schemathesis finds no 5xx and no response
that disagrees with the document (status codes, content types, headers, bodies)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from httpkit import PASSWORD, make_settings
from hypothesis import HealthCheck, given, settings
from netkit import free_port
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chitram_core import Chitram
from chitram_falcon import create_app
from chitram_falcon.openapi import build_spec

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app under a real uvicorn on 127.0.0.1, owning its Chitram through the lifespan."""
    data_dir: Path = tmp_path_factory.mktemp("openapi")
    app = create_app(settings=make_settings(data_dir, allow_anonymous_uploads=True))
    app.handle.opener = partial(Chitram, background=False)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=20)


def test_the_document_is_openapi_3_1_with_every_route() -> None:
    spec = build_spec()
    assert spec["openapi"] == "3.1.0"
    paths = spec["paths"]
    for path, methods in {
        "/health": {"get"},
        "/health/live": {"get"},
        "/health/ready": {"get"},
        "/api/v1/auth/register": {"post"},
        "/api/v1/auth/login": {"post"},
        "/api/v1/auth/token": {"post"},
        "/api/v1/auth/refresh": {"post"},
        "/api/v1/auth/logout": {"post"},
        "/api/v1/auth/me": {"get"},
        "/api/v1/auth/password-reset": {"post"},
        "/api/v1/images/upload": {"post"},
        "/api/v1/images/upload-url": {"post"},
        "/api/v1/images": {"get"},
        "/api/v1/images/{image_id}": {"get", "delete"},
        "/api/v1/images/{image_id}/file": {"get", "head"},
        "/api/v1/images/{image_id}/thumbnail": {"get", "head"},
        "/api/v1/auth/oauth/{provider}": {"get"},
        "/api/v1/auth/oauth/token": {"post"},
        "/api/v1/images/{image_id}/tags": {"get", "post"},
        "/api/v1/images/{image_id}/tags/{name}": {"delete"},
        "/api/v1/images/{image_id}/ai-tag": {"post"},
        "/api/v1/tags": {"get"},
        "/api/v1/tags/popular": {"get"},
        "/api/v1/tags/search": {"get"},
        "/api/v1/auth/tokens": {"get", "post"},
        "/api/v1/auth/tokens/{token_id}": {"delete"},
    }.items():
        assert methods <= set(paths[path]), path
    for name in (
        *("Image", "User", "AuthResponse", "Page", "Health", "Error", "Tag", "ImageTag"),
        *("Usage", "Me", "ApiToken", "CreatedToken"),
    ):
        assert name in spec["components"]["schemas"]


def test_openapi_json_is_served(server: str) -> None:
    resp = httpx.get(f"{server}/openapi.json")
    assert resp.status_code == 200
    assert resp.json() == build_spec()


def test_schemathesis_finds_no_5xx_and_no_nonconforming_response(server: str) -> None:
    token = httpx.post(
        f"{server}/api/v1/auth/register",
        json={"email": "fuzz@example.com", "password": PASSWORD},
    ).json()["access_token"]
    image_id = httpx.post(
        f"{server}/api/v1/images/upload",
        files={"file": ("a.png", _png(), "image/png")},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["id"]
    assert image_id
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    failures: list[str] = []
    seen: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    # Destructive operations last, so the others meet a live session and a live image.
    operations.sort(key=lambda op: op.method.upper() == "DELETE" or "logout" in op.path)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            if (
                case.path_parameters
                and "image_id" in case.path_parameters
                and (hash(str(case.path_parameters)) % 2 == 0)
            ):
                case.path_parameters["image_id"] = image_id
            if isinstance(case.body, dict) and isinstance(case.body.get("url"), str):
                # Never a fetch beyond this machine: a loopback URL, which the guard refuses.
                case.body["url"] = "http://127.0.0.1/fuzz.png"
            headers = {}
            if len(seen) % 3 or not (case.headers or {}).get("Authorization"):
                headers["Authorization"] = f"Bearer {token}"
            resp = case.call_and_validate(base_url=server, headers=headers, checks=CHECKS)
            seen.append(f"{case.operation.label} {resp.status_code}")

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert len(seen) > 100
    assert not failures, "\n\n".join(failures)


def _png() -> bytes:
    from httpkit import png_bytes

    return png_bytes()
