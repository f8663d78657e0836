"""The UI's JSON endpoints and the API's take the same way in: the listing's parameters are
parsed and refused alike (chitram_falcon/listing.py), and an upload waits for room as the API's
does (UploadResource.admit) before its session, its CSRF token or a byte of its body is read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from webkit import PASSWORD, WebEnv, open_web, picture

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebEnv]:
    async with open_web(tmp_path) as env:
        yield env


async def _signed_in_both_ways(web: WebEnv) -> dict[str, str]:
    """Sign the web client in, and return a bearer header for the same user on the API."""
    email = await web.register()
    login = await web.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _upload(web: WebEnv, token: str, n: int) -> str:
    resp = await web.client.post(
        "/ui/api/images/upload",
        files={"file": (f"{n}.png", picture(20 + n, 20), "image/png")},
        headers={"X-CSRF-Token": token},
    )
    assert resp.status_code == 201, resp.text
    image_id: str = resp.json()["id"]
    return image_id


def _outcome(resp: httpx.Response) -> Any:
    if resp.status_code == 200:
        return 200, [item["id"] for item in resp.json()["items"]]
    detail = resp.json()["detail"]
    return resp.status_code, detail["code"], detail["message"], detail["details"]


QUERIES: list[list[tuple[str, str]]] = [
    [("limit", "0")],
    [("limit", "101")],
    [("limit", "-1")],
    [("limit", "abc")],
    [("limit", "1.5")],
    [("limit", "")],
    [("limit", "1")],
    [("limit", "100")],
    [("cursor", "!!garbage!!")],
    [("cursor", "")],
    [("tag", "no!")],
    [("tag", " ")],
    [("tag", "cat")],
    [("tag", "")],
    [("q", "")],
    [("q", "png")],
    [("limit", "2"), ("tag", "nobody-uses-this")],
]


async def test_both_listings_parse_and_refuse_the_same_parameters(web: WebEnv) -> None:
    bearer = await _signed_in_both_ways(web)
    token = await web.form("/upload")
    for n in range(3):
        await _upload(web, token, n)
    # The default page size is each surface's own (20, and the UI's page size): with three
    # images both show them all.
    for params in QUERIES:
        api = await web.client.get("/api/v1/images", params=params, headers=bearer)
        ui = await web.client.get("/ui/api/images", params=params)
        assert _outcome(ui) == _outcome(api), params
        assert api.status_code in {200, 400, 422}, (params, api.text)


async def test_the_ui_listing_pages_with_the_apis_cursor(web: WebEnv) -> None:
    bearer = await _signed_in_both_ways(web)
    token = await web.form("/upload")
    ids = [await _upload(web, token, n) for n in range(3)]
    first = (await web.client.get("/ui/api/images", params={"limit": "2"})).json()
    rest = await web.client.get(
        "/api/v1/images", params={"cursor": first["next_cursor"]}, headers=bearer
    )
    seen = [item["id"] for item in first["items"]] + [i["id"] for i in rest.json()["items"]]
    assert seen == list(reversed(ids))


async def test_a_ui_upload_waits_for_room_as_the_api_does_and_is_let_in(tmp_path: Path) -> None:
    async with open_web(tmp_path, upload_concurrency=1, upload_queue=0) as web:
        await web.register()
        token = await web.form("/upload")
        slots = web.chitram.upload_slots
        await slots.take()
        results: list[int] = []

        async def upload() -> None:
            resp = await web.client.post(
                "/ui/api/images/upload",
                files={"file": ("a.png", picture(30, 20), "image/png")},
                headers={"X-CSRF-Token": token},
            )
            results.append(resp.status_code)

        async with anyio.create_task_group() as tg:
            tg.start_soon(upload)
            await anyio.sleep(0.1)
            assert not results  # waiting for room, neither refused nor through
            assert slots.snapshot()["waiting_for_room"] == 1
            slots.release()
        assert results == [201]
        assert slots.snapshot()["waiting_for_room"] == 0


async def test_a_ui_upload_without_room_is_refused_after_the_same_wait(tmp_path: Path) -> None:
    async with open_web(tmp_path, upload_concurrency=1, upload_queue=0) as web:
        await web.register()
        token = await web.form("/upload")
        async with web.chitram.upload_slots.acquire():
            started = anyio.current_time()
            resp = await web.client.post(
                "/ui/api/images/upload",
                files={"file": ("a.png", picture(30, 20), "image/png")},
                headers={"X-CSRF-Token": token},
            )
            waited = anyio.current_time() - started
        assert resp.status_code == 503, resp.text
        assert resp.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
        assert int(resp.headers["retry-after"]) >= 1
        assert 0.4 <= waited < 5  # room_wait (0.5 s), as for the API's upload
