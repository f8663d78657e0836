"""A stock tus client (tuspy, unchanged) against real ``chitram serve`` processes: an upload
that survives a SIGKILL of its server, and one whose chunks alternate between two processes
over PostgreSQL, S3 (moto) and Redis."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import anyio
import httpx
import pytest
from serverkit import Cluster, Server, bearer, chitram, noisy_jpeg, register
from tusclient import client as tus_client
from tusclient.uploader import Uploader

CHUNK = 128 * 1024


def uploader(base_url: str, token: str, data: bytes, url: str | None = None) -> Uploader:
    """A tuspy uploader as its documentation shows it (sha1 checksums on)."""
    tus = tus_client.TusClient(f"{base_url}/api/v1/uploads", headers=bearer(token))
    return tus.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=CHUNK,
        metadata={"filename": "big.jpg"},
        upload_checksum=True,
        url=url,
    )


def image_of(base_url: str, token: str, upload_url: str) -> str:
    head = httpx.head(upload_url, headers={"Tus-Resumable": "1.0.0", **bearer(token)})
    assert head.status_code == 200, head.text
    return head.headers["Chitram-Image-Id"]


def check_image(base_url: str, image_id: str, data: bytes) -> None:
    stored = httpx.get(f"{base_url}/api/v1/images/{image_id}/file", timeout=30)
    assert hashlib.sha256(stored.content).hexdigest() == hashlib.sha256(data).hexdigest()
    thumb = httpx.get(f"{base_url}/api/v1/images/{image_id}/thumbnail", timeout=30)
    assert thumb.status_code == 200 and thumb.headers["content-type"].startswith("image/")


def test_tuspy_resumes_after_the_server_is_killed(tmp_path: Path) -> None:
    """SQLite and files: nothing about the upload lives in the process that was killed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")}
    env.update(
        {
            "CHITRAM_DATA_DIR": str(tmp_path / "data"),
            "CHITRAM_UPLOAD_RATE_LIMIT": "off",
            "CHITRAM_AUTH_RATE_LIMIT": "off",
            "CHITRAM_WEB_UI": "false",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    data = noisy_jpeg(1100, 800, seed=26)
    assert len(data) > 3 * CHUNK
    first = Server("first", env, tmp_path, tmp_path / "first.log").start().wait_ready()
    try:
        token = register(first.url, "tus@example.com")
        up = uploader(first.url, token, data)
        up.upload_chunk()
        up.upload_chunk()
        assert up.offset == 2 * CHUNK
        upload_url = up.url
    finally:
        first.kill()
    second = Server("second", env, tmp_path, tmp_path / "second.log", port=first.port)
    second.start().wait_ready()
    try:
        resumed = uploader(second.url, token, data, url=upload_url)
        assert resumed.offset == 2 * CHUNK  # from the server's HEAD
        resumed.upload()
        check_image(second.url, image_of(second.url, token, upload_url), data)
    finally:
        second.stop()
    chitram(["sweep", "--older-than", "0"], env, tmp_path)
    parts = tmp_path / "data" / "storage" / "resumable"
    assert not parts.exists() or not any(p.is_file() for p in parts.rglob("*"))


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.redis
def test_chunks_alternate_between_two_processes(cluster: Cluster) -> None:
    one, two = cluster.ready("one", "two")
    token = register(one.url, "fleet@example.com")
    data = noisy_jpeg(1000, 800, seed=7)
    up = uploader(one.url, token, data)
    up.upload_chunk()
    turn = 0
    while up.offset < len(data):
        server = (two, one)[turn % 2]
        up = uploader(server.url, token, data, url=up.url.replace(one.url, server.url))
        up.upload_chunk()
        turn += 1
    assert turn >= 2
    image_id = image_of(one.url, token, up.url)
    check_image(two.url, image_id, data)
    assert cluster.s3_keys("resumable/") == set()


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.redis
def test_a_fleet_server_killed_mid_upload_and_the_sweep_after(cluster: Cluster) -> None:
    (one,) = cluster.ready("one")
    token = register(one.url, "kill@example.com")
    data = noisy_jpeg(1000, 800, seed=8)
    up = uploader(one.url, token, data)
    up.upload_chunk()
    abandoned = uploader(one.url, token, noisy_jpeg(900, 700, seed=9))
    abandoned.upload_chunk()
    one.kill()
    (again,) = cluster.ready("again")
    resumed = uploader(again.url, token, data, url=up.url.replace(one.url, again.url))
    assert resumed.offset == CHUNK
    resumed.upload()
    check_image(again.url, image_of(again.url, token, resumed.url), data)
    assert len(cluster.s3_keys("resumable/")) == 1  # the abandoned upload's chunk
    # The abandoned upload's day passes (its expiry moved back), then the sweep runs.
    anyio.run(
        cluster.sql,
        "UPDATE resumable_uploads SET expires_at = '2000-01-01' WHERE image_id IS NULL",
    )
    gone = httpx.head(
        abandoned.url.replace(one.url, again.url),
        headers={"Tus-Resumable": "1.0.0", **bearer(token)},
    )
    assert gone.status_code == 404
    out = chitram(["sweep", "--older-than", "0"], cluster.env, cluster.workdir)
    assert "expired uploads removed: 1" in out.stdout
    assert cluster.s3_keys("resumable/") == set()
