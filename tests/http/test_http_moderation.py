"""The moderation gate over HTTP: a rejection is 422 ``CONTENT_REJECTED``, for multipart and URL
uploads alike, and the moderation service sees every upload."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpkit import assert_error, bearer, jpeg_bytes, open_env, png_bytes
from originkit import body, serve, verdicts

pytestmark = pytest.mark.anyio

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
