"""A quota holds across processes: twenty uploads at once, spread over two real ``chitram serve``
processes over one PostgreSQL, at a quota of five images, store exactly five. (The per-user
cap on uploads at once is raised so that the quota alone decides.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serverkit import Cluster, bearer, noisy_jpeg, register, upload_files

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3, pytest.mark.slow]


def test_twenty_concurrent_uploads_at_a_quota_of_five_store_exactly_five(
    cluster: Cluster,
) -> None:
    a, b = cluster.ready(
        "a",
        "b",
        CHITRAM_QUOTA_IMAGES="5",
        CHITRAM_UPLOAD_WAIT_TIMEOUT="120",
        CHITRAM_UPLOADS_PER_USER="20",
    )
    token = register(a.url, "quota@example.com")
    files = [noisy_jpeg(48, 32, seed) for seed in range(20)]

    def one(n: int) -> httpx.Response:
        server = (a, b)[n % 2]
        return httpx.post(
            f"{server.url}/api/v1/images/upload",
            files=upload_files(files[n], f"{n}.jpg"),
            headers=bearer(token),
            timeout=120.0,
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(one, range(20)))
    statuses = sorted(resp.status_code for resp in answers)
    assert statuses == [201] * 5 + [413] * 15, [(r.status_code, r.text) for r in answers]
    for resp in answers:
        if resp.status_code == 413:
            assert resp.json()["detail"]["code"] == "QUOTA_EXCEEDED"
    stored = {resp.json()["id"] for resp in answers if resp.status_code == 201}

    for server in (a, b):
        listed = httpx.get(f"{server.url}/api/v1/images?limit=100", headers=bearer(token))
        assert {i["id"] for i in listed.json()["items"]} == stored
        me = httpx.get(f"{server.url}/api/v1/auth/me", headers=bearer(token)).json()
        assert (me["usage"]["images"], me["usage"]["quota_images"]) == (5, 5)
    assert len(cluster.s3_keys("blobs/")) == 5
    assert cluster.s3_keys("tmp/") == set()
