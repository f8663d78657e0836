"""Two real ``chitram serve`` processes over one PostgreSQL, one S3 bucket and one Redis.

Nothing that matters lives in a process: an image uploaded through one is read and deleted
through the other, the metadata cache never serves a row the other process deleted, and the
upload rate limit counts the hits on both processes together.
"""

from __future__ import annotations

import time

import httpx
import pytest
from serverkit import Cluster, bearer, jpeg_bytes, register, upload_files

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3, pytest.mark.slow]


def test_an_image_uploaded_through_one_process_is_served_and_deleted_by_the_other(
    cluster: Cluster,
) -> None:
    a, b = cluster.ready("a", "b")
    token = register(a.url, "ada@example.com")
    data = jpeg_bytes(120, 80, (200, 30, 30))
    up = httpx.post(
        f"{a.url}/api/v1/images/upload", files=upload_files(data), headers=bearer(token)
    )
    assert up.status_code == 201, up.text
    image_id = up.json()["id"]

    meta = httpx.get(f"{b.url}/api/v1/images/{image_id}")
    assert meta.status_code == 200
    assert meta.json()["sha256"] == up.json()["sha256"]
    got = httpx.get(f"{b.url}/api/v1/images/{image_id}/file")
    assert got.status_code == 200
    assert got.content == data
    thumb = httpx.get(f"{b.url}/api/v1/images/{image_id}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"

    gone = httpx.delete(f"{b.url}/api/v1/images/{image_id}", headers=bearer(token))
    assert gone.status_code == 204
    for server in (a, b):
        assert httpx.get(f"{server.url}/api/v1/images/{image_id}").status_code == 404
        assert httpx.get(f"{server.url}/api/v1/images/{image_id}/file").status_code == 404
    assert cluster.s3_keys("blobs/") == set()
    assert cluster.s3_keys("thumbnails/") == set()


def test_a_token_issued_by_one_process_is_accepted_by_the_other(cluster: Cluster) -> None:
    a, b = cluster.ready("a", "b")
    token = register(a.url, "bob@example.com")
    me = httpx.get(f"{b.url}/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["email"] == "bob@example.com"


def test_a_delete_through_one_process_invalidates_the_other_ones_cached_row(
    cluster: Cluster,
) -> None:
    a, b = cluster.ready("a", "b")
    token = register(a.url, "cy@example.com")
    up = httpx.post(
        f"{a.url}/api/v1/images/upload", files=upload_files(jpeg_bytes()), headers=bearer(token)
    )
    assert up.status_code == 201, up.text
    image_id = up.json()["id"]
    url = f"/api/v1/images/{image_id}"

    # A finished thumbnail rewrites the row (thumbnail_ready) and drops it from the cache, so
    # wait for it first; then warm the cache through B until it answers from it.
    for _ in range(300):
        if httpx.get(a.url + url).json()["thumbnail_ready"]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the thumbnail was never made")
    headers = [httpx.get(b.url + url).headers["X-Cache"] for _ in range(3)]
    assert headers[-1] == "HIT", headers
    assert httpx.get(a.url + url).headers["X-Cache"] == "HIT"  # one cache, shared

    assert httpx.delete(a.url + url, headers=bearer(token)).status_code == 204
    stale = httpx.get(b.url + url)
    assert stale.status_code == 404, stale.text
    assert stale.json()["detail"]["code"] == "IMAGE_NOT_FOUND"
    assert httpx.get(b.url + url + "/file").status_code == 404


def test_the_upload_rate_limit_counts_hits_on_both_processes_together(cluster: Cluster) -> None:
    a, b = cluster.ready("a", "b", CHITRAM_UPLOAD_RATE_LIMIT="4/minute")
    token = register(a.url, "dee@example.com")
    statuses = []
    remaining = []
    for i, server in enumerate([a, b, a, b, a, b]):
        resp = httpx.post(
            f"{server.url}/api/v1/images/upload",
            files=upload_files(jpeg_bytes(color=(i * 40, 0, 0))),
            headers=bearer(token),
        )
        statuses.append(resp.status_code)
        remaining.append(resp.headers.get("X-RateLimit-Remaining"))
        if resp.status_code == 429:
            assert resp.json()["detail"]["code"] == "RATE_LIMIT_EXCEEDED"
            assert int(resp.headers["Retry-After"]) > 0
    assert statuses == [201, 201, 201, 201, 429, 429], (statuses, remaining)
    assert remaining[:4] == ["3", "2", "1", "0"]

    # Another user's window is their own, on either process.
    other = register(b.url, "eve@example.com")
    resp = httpx.post(
        f"{b.url}/api/v1/images/upload", files=upload_files(jpeg_bytes()), headers=bearer(other)
    )
    assert resp.status_code == 201


def test_a_delete_through_one_process_is_seen_by_the_others_warm_read_path(
    cluster: Cluster,
) -> None:
    """Prepared headers, JSON, ready thumbnails and bytes held in B's memory never outlive the
    image: after a delete through A, B refuses every read, conditional and ranged ones too."""
    a, b = cluster.ready("a", "b")
    token = register(a.url, "dee@example.com")
    up = httpx.post(
        f"{a.url}/api/v1/images/upload", files=upload_files(jpeg_bytes()), headers=bearer(token)
    )
    assert up.status_code == 201, up.text
    base = f"{b.url}/api/v1/images/{up.json()['id']}"
    routes = [base, f"{base}/file", f"{base}/thumbnail"]
    for _ in range(3):
        for url in routes:
            assert httpx.get(url).status_code == 200, url
    assert httpx.get(base).headers["X-Cache"] == "HIT"
    etags = {url: httpx.get(url).headers["ETag"] for url in routes[1:]}

    assert (
        httpx.delete(f"{a.url}/api/v1/images/{up.json()['id']}", headers=bearer(token)).status_code
        == 204
    )
    for url in routes:
        gone = httpx.get(url)
        assert gone.status_code == 404, (url, gone.text)
        assert gone.json()["detail"]["code"] == "IMAGE_NOT_FOUND"
    for url, etag in etags.items():
        assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 404
        assert httpx.get(url, headers={"Range": "bytes=0-9"}).status_code == 404
        assert httpx.head(url).status_code == 404
