"""A bounded soak: mixed uploads, reads and deletes from several clients against two processes.

``CHITRAM_SOAK_SECONDS`` sets its length (60 under ``CI=true``, 20 otherwise). Afterwards,
with the processes idle:

- no response was a 5xx, and every answer was the one the operation calls for (each client
  reads and deletes only its own live images, so there is no legitimate 404 to excuse);
- every image row has its blob row, and every blob's refcount is its number of images;
- no row without bytes: each blob row's key and each ready thumbnail's key is in S3;
- no bytes without a row: each object under ``blobs/`` and ``thumbnails/`` has its row, unless
  its key is queued in ``pending_deletions`` (storage refused a removal; the sweep retries it).
  No sweep runs first: the invariant must hold on its own;
- nothing is left under ``tmp/`` (every upload finished, so every temporary object went).

A share of the uploads reuse a few fixed images, so identical bytes are claimed and released
by different users through different processes at the same time (deduplication races).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import anyio
import httpx
import pytest
from serverkit import PASSWORD, Cluster, Server, bearer, jpeg_bytes

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3, pytest.mark.slow]

IN_CI = os.environ.get("CI", "").lower() == "true"
SOAK_SECONDS = float(os.environ.get("CHITRAM_SOAK_SECONDS", "60" if IN_CI else "20"))
CLIENTS = 4
SHARED = [jpeg_bytes(32, 32, (i * 60, 255 - i * 60, 128)) for i in range(4)]
EXPECTED = {"upload": 201, "file": 200, "meta": 200, "thumbnail": 200, "delete": 204}


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, int]] = Counter()
        self.surprises: list[str] = []

    def note(self, op: str, server: Server, resp: httpx.Response) -> None:
        self.counts[(op, resp.status_code)] += 1
        if resp.status_code != EXPECTED[op] and len(self.surprises) < 20:
            self.surprises.append(f"{op} via {server.name}: {resp.status_code} {resp.text[:300]}")


async def client_loop(
    n: int, servers: list[Server], deadline: float, tally: Tally
) -> dict[str, str]:
    """One user's session; returns its live images (id -> sha256) at the end."""
    rng = random.Random(n)
    live: dict[str, str] = {}
    clients = {s.name: httpx.AsyncClient(base_url=s.url, timeout=30.0) for s in servers}
    try:
        registered = await clients[servers[n % 2].name].post(
            "/api/v1/auth/register", json={"email": f"soak{n}@example.com", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        token = registered.json()["access_token"]
        serial = 0
        while time.monotonic() < deadline:
            server = rng.choice(servers)
            client = clients[server.name]
            op = rng.choices(
                ["upload", "file", "meta", "thumbnail", "delete"], [35, 25, 15, 10, 15]
            )[0]
            if op != "upload" and not live:
                op = "upload"
            if op == "upload":
                serial += 1
                if rng.random() < 0.4:
                    data = rng.choice(SHARED)
                else:
                    color = (n * 50 % 256, serial % 256, serial // 256 % 256)
                    data = jpeg_bytes(rng.randint(16, 160), rng.randint(16, 160), color)
                resp = await client.post(
                    "/api/v1/images/upload",
                    files={"file": (f"soak-{n}-{serial}.jpg", data, "image/jpeg")},
                    headers=bearer(token),
                )
                if resp.status_code == 201:
                    live[resp.json()["id"]] = resp.json()["sha256"]
            else:
                image_id = rng.choice(sorted(live))
                path = f"/api/v1/images/{image_id}"
                if op == "file":
                    resp = await client.get(path + "/file")
                    if resp.status_code == 200:
                        assert resp.headers["etag"].strip('"') == live[image_id]
                elif op == "meta":
                    resp = await client.get(path)
                elif op == "thumbnail":
                    resp = await client.get(path + "/thumbnail")
                else:
                    resp = await client.delete(path, headers=bearer(token))
                    if resp.status_code == 204:
                        del live[image_id]
            tally.note(op, server, resp)
    finally:
        for c in clients.values():
            await c.aclose()
    return live


async def wait_for_idle_thumbnails(cluster: Cluster, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        rows = await cluster.sql("SELECT count(*) AS n FROM thumbnails WHERE status = 'pending'")
        if rows[0]["n"] == 0:
            return
        await anyio.sleep(0.5)


@pytest.mark.anyio
async def test_a_mixed_soak_against_two_processes_leaves_no_5xx_and_no_orphans(
    cluster: Cluster,
) -> None:
    servers = cluster.ready("a", "b")
    tally = Tally()
    survivors: dict[str, str] = {}
    started = time.monotonic()
    deadline = started + SOAK_SECONDS

    async def run(n: int) -> None:
        survivors.update(await client_loop(n, servers, deadline, tally))

    async with anyio.create_task_group() as tg:
        for n in range(CLIENTS):
            tg.start_soon(run, n)
    elapsed = time.monotonic() - started
    total = sum(tally.counts.values())
    print(f"soak: {total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s)")
    print("soak:", dict(sorted(tally.counts.items())))

    server_errors = {k: v for k, v in tally.counts.items() if k[1] >= 500}
    assert not server_errors, (server_errors, tally.surprises)
    assert not tally.surprises, tally.surprises
    assert tally.counts[("upload", 201)] > 0 and tally.counts[("delete", 204)] > 0

    # Every survivor is whole, through either process.
    async with httpx.AsyncClient(timeout=30.0) as client:
        for image_id, sha256 in survivors.items():
            for server in servers:
                resp = await client.get(f"{server.url}/api/v1/images/{image_id}/file")
                assert resp.status_code == 200
                assert resp.headers["etag"].strip('"') == sha256

    await wait_for_idle_thumbnails(cluster)
    images = await cluster.sql("SELECT id::text AS id, sha256 FROM images")
    assert {r["id"]: r["sha256"] for r in images} == survivors
    dangling = await cluster.sql(
        "SELECT i.id FROM images i LEFT JOIN blobs b ON b.sha256 = i.sha256 WHERE b.sha256 IS NULL"
    )
    assert dangling == []
    miscounted = await cluster.sql(
        "SELECT b.sha256, b.refcount, count(i.id) AS n FROM blobs b"
        " LEFT JOIN images i ON i.sha256 = b.sha256 GROUP BY b.sha256, b.refcount"
        " HAVING b.refcount <> count(i.id)"
    )
    assert miscounted == []

    blob_rows = {r["storage_key"] for r in await cluster.sql("SELECT storage_key FROM blobs")}
    ready_thumbs = {
        r["key"] for r in await cluster.sql("SELECT key FROM thumbnails WHERE status = 'ready'")
    }
    thumb_rows = {r["key"] for r in await cluster.sql("SELECT key FROM thumbnails")}
    queued = {
        r["storage_key"] for r in await cluster.sql("SELECT storage_key FROM pending_deletions")
    }
    blob_objects = cluster.s3_keys("blobs/")
    thumb_objects = cluster.s3_keys("thumbnails/")
    print(
        f"soak: {len(blob_rows)} blob rows, {len(blob_objects)} blob objects, "
        f"{len(ready_thumbs)} ready thumbnails, {len(queued)} queued removals"
    )

    assert blob_rows - blob_objects == set(), "rows without bytes"
    assert ready_thumbs - thumb_objects == set(), "ready thumbnails without bytes"
    assert blob_objects - blob_rows <= queued, "blob bytes without a row, not queued for removal"
    assert thumb_objects - thumb_rows <= queued, "thumbnail bytes without a row, not queued"
    assert cluster.s3_keys("tmp/") == set(), "temporary upload objects left behind"
