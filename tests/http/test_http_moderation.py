"""The moderation gate over HTTP: a rejection is 422 ``CONTENT_REJECTED``, for multipart and URL
uploads alike, and the moderation service sees every upload."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from httpkit import Env, assert_error, bearer, jpeg_bytes, open_env, png_bytes
from originkit import body, serve, verdicts

pytestmark = pytest.mark.anyio

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {"Content-Type": "application/offset+octet-stream"}
ALLOW = {"verdict": "allow"}
REJECT = {"verdict": "reject", "reason": "not on this site"}


def every_second(n: int) -> dict[str, object]:
    return REJECT if n % 2 else ALLOW


async def test_a_rejection_reaches_the_api_as_422_and_url_uploads_pass_the_gate(
    tmp_path: Path,
) -> None:
    with (
        serve({"/check": verdicts(every_second)}) as service,
        serve({"/cat.jpg": body(jpeg_bytes())}) as origin,
    ):
        async with open_env(
            tmp_path,
            moderators=("http",),
            moderation_url=service.url("/check"),
            fetch_allow_networks=("127.0.0.1/32",),
            fetch_allow_ports=(origin.port,),
        ) as env:
            token = await env.register()
            assert (await env.upload(token)).status_code == 201
            assert_error(await env.upload(token, png_bytes(30, 30)), 422, "CONTENT_REJECTED")
            url = {"url": origin.url("/cat.jpg")}
            first = await env.client.post(
                "/api/v1/images/upload-url", json=url, headers=bearer(token)
            )
            assert first.status_code == 201, first.text
            second = await env.client.post(
                "/api/v1/images/upload-url", json=url, headers=bearer(token)
            )
            assert_error(second, 422, "CONTENT_REJECTED")
            listed = await env.client.get("/api/v1/images", headers=bearer(token))
            assert len(listed.json()["items"]) == 2
        assert len(service.bodies) == 4


def distinct_png(n: int) -> bytes:
    return png_bytes(20 + n, 17 + n)


async def tus_upload(env: Env, token: str, data: bytes) -> httpx.Response:
    """A resumable upload in two chunks; the answer to the last one."""
    created = await env.client.post(
        "/api/v1/uploads",
        headers={**TUS, **bearer(token), "Upload-Length": str(len(data))},
    )
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    half = len(data) // 2
    first = await env.client.patch(
        location,
        content=data[:half],
        headers={**TUS, **CHUNK, **bearer(token), "Upload-Offset": "0"},
    )
    assert first.status_code == 204, first.text
    return await env.client.patch(
        location,
        content=data[half:],
        headers={**TUS, **CHUNK, **bearer(token), "Upload-Offset": str(half)},
    )


async def test_every_second_upload_of_every_kind_is_rejected_never_served_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """Multipart, URL and resumable uploads, the service rejecting every second one: the
    rejected get 422 and no id, and neither the API, the storage nor the sweep finds a trace."""
    images = {f"/{n}.png": distinct_png(n) for n in range(6)}
    with (
        serve({"/check": verdicts(every_second)}) as service,
        serve({path: body(data, "image/png") for path, data in images.items()}) as origin,
    ):
        async with open_env(
            tmp_path,
            moderators=("http",),
            moderation_url=service.url("/check"),
            fetch_allow_networks=("127.0.0.1/32",),
            fetch_allow_ports=(origin.port,),
        ) as env:
            token = await env.register()
            accepted: dict[str, bytes] = {}
            rejected: list[bytes] = []
            for n, (path, data) in enumerate(images.items()):
                kind = ("multipart", "url", "resumable")[n // 2]
                if kind == "multipart":
                    resp = await env.upload(token, data)
                elif kind == "url":
                    resp = await env.client.post(
                        "/api/v1/images/upload-url",
                        json={"url": origin.url(path)},
                        headers=bearer(token),
                    )
                else:
                    resp = await tus_upload(env, token, data)
                if n % 2:
                    detail = assert_error(resp, 422, "CONTENT_REJECTED")
                    assert "not on this site" in detail["message"]
                    rejected.append(data)
                elif kind == "resumable":
                    assert resp.status_code == 204, resp.text
                    status = await env.client.head(
                        resp.request.url, headers={**TUS, **bearer(token)}
                    )
                    accepted[status.headers["Chitram-Image-Id"]] = data
                else:
                    assert resp.status_code == 201, (kind, resp.text)
                    accepted[resp.json()["id"]] = data
            assert len(service.bodies) == 6

            listed = await env.client.get("/api/v1/images", headers=bearer(token))
            assert sorted(i["id"] for i in listed.json()["items"]) == sorted(accepted)
            for image_id, data in accepted.items():
                got = await env.client.get(f"/api/v1/images/{image_id}/file")
                assert got.status_code == 200 and got.content == data
            shas = {hashlib.sha256(data).hexdigest() for data in rejected}
            keys = [k async for k in env.chitram.storage.keys("")]
            assert not [k for k in keys if any(sha in k for sha in shas)], keys
            assert not [k for k in keys if k.startswith(("tmp/", "resumable/"))], keys
            assert len([k for k in keys if k.startswith("blobs/")]) == len(accepted)
            assert sum((await env.chitram.job_counts()).values()) <= len(accepted)

            me = await env.client.get("/api/v1/auth/me", headers=bearer(token))
            assert me.json()["usage"]["images"] == len(accepted)

    # `chitram sweep` over the same data directory finds nothing to remove.
    with anyio.fail_after(300):
        swept = await anyio.run_process(
            [sys.executable, "-m", "chitram_falcon", "sweep", "--older-than", "0"],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("CHITRAM_")},
                "CHITRAM_DATA_DIR": str(tmp_path),
            },
            cwd=tmp_path,
            check=False,
        )
    out = swept.stdout.decode()
    assert swept.returncode == 0, swept.stderr.decode()
    assert "orphans queued: 0, removed: 0" in out, out
    assert "expired uploads removed: 0" in out, out
    async with open_env(tmp_path) as env:
        assert [k async for k in env.chitram.storage.keys("")] == keys


async def test_a_down_moderator_is_503_unless_fail_open(tmp_path: Path) -> None:
    with serve({"/check": verdicts(lambda n: None)}) as service:
        async with open_env(
            tmp_path, moderators=("http",), moderation_url=service.url("/check")
        ) as env:
            token = await env.register()
            assert_error(await env.upload(token), 503, "PROVIDER_UNAVAILABLE")
            listed = await env.client.get("/api/v1/images", headers=bearer(token))
            assert listed.json()["items"] == []
        async with open_env(
            tmp_path / "open",
            moderators=("http",),
            moderation_url=service.url("/check"),
            moderation_fail_open=True,
        ) as env:
            token = await env.register()
            assert (await env.upload(token)).status_code == 201
    assert len(service.bodies) == 2
