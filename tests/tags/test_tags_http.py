"""The tag routes over HTTP (docs/http-api.md#tags, with the ai-tag route), against the real app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import make_settings, picture
from fake_openai import FakeOpenAI

from chitram_core import Chitram
from chitram_core.settings import RateLimit
from chitram_falcon import create_app

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery"


class Client:
    def __init__(self, http: httpx.AsyncClient, chitram: Chitram) -> None:
        self.http = http
        self.chitram = chitram

    async def token(self) -> str:
        resp = await self.http.post(
            "/api/v1/auth/register",
            json={"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["access_token"])

    async def upload(self, token: str, seed: int = 0, filename: str = "a.png") -> str:
        resp = await self.http.post(
            "/api/v1/images/upload",
            files={"file": (filename, picture(seed), "image/png")},
            headers=auth(token),
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    async def tag(self, token: str, image_id: str, name: str, **extra: Any) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/images/{image_id}/tags", json={"tag": name, **extra}, headers=auth(token)
        )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert set(detail) == {"code", "message", "details"}
    return str(detail["code"])


@asynccontextmanager
async def serving(
    tmp_path: Path, *, background: bool = False, **overrides: Any
) -> AsyncIterator[Client]:
    async with Chitram(make_settings(tmp_path, **overrides), background=background) as chitram:
        transport = httpx.ASGITransport(app=create_app(chitram))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Client(http, chitram)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with serving(tmp_path) as opened:
        yield opened


async def test_add_list_and_remove_a_tag(client: Client) -> None:
    token = await client.token()
    image_id = await client.upload(token)
    resp = await client.tag(token, image_id, "  Sunny Beach ", category="place")
    assert resp.status_code == 201, resp.text
    assert resp.json() == {
        "name": "sunny beach",
        "category": "place",
        "source": "user",
        "confidence": None,
    }
    listed = await client.http.get(f"/api/v1/images/{image_id}/tags")
    assert listed.status_code == 200
    assert listed.json() == [resp.json()]
    gone = await client.http.delete(
        f"/api/v1/images/{image_id}/tags/SUNNY%20BEACH", headers=auth(token)
    )
    assert gone.status_code == 204
    assert (await client.http.get(f"/api/v1/images/{image_id}/tags")).json() == []
    again = await client.http.delete(
        f"/api/v1/images/{image_id}/tags/sunny%20beach", headers=auth(token)
    )
    assert error_code(again, 404) == "TAG_NOT_FOUND"


async def test_the_tags_of_an_unknown_image_are_an_empty_list(client: Client) -> None:
    for image_id in (str(uuid.uuid4()), "nope"):
        resp = await client.http.get(f"/api/v1/images/{image_id}/tags")
        assert resp.status_code == 200 and resp.json() == []


async def test_errors(client: Client) -> None:
    token = await client.token()
    stranger = await client.token()
    image_id = await client.upload(token)
    assert (await client.tag(token, image_id, "cat")).status_code == 201
    assert error_code(await client.tag(token, image_id, "CAT"), 400) == "INVALID_REQUEST"
    assert error_code(await client.tag(stranger, image_id, "dog"), 403) == "FORBIDDEN"
    unknown = str(uuid.uuid4())
    assert error_code(await client.tag(token, unknown, "dog"), 404) == "IMAGE_NOT_FOUND"
    for bad in ("a", "x" * 51, "no!", 7):
        assert error_code(await client.tag(token, image_id, bad), 422) == "VALIDATION_ERROR"  # type: ignore[arg-type]
    no_field = await client.http.post(
        f"/api/v1/images/{image_id}/tags", json={}, headers=auth(token)
    )
    assert error_code(no_field, 422) == "VALIDATION_ERROR"
    anonymous = await client.http.post(f"/api/v1/images/{image_id}/tags", json={"tag": "dog"})
    assert error_code(anonymous, 401) == "UNAUTHORIZED"
    delete_anon = await client.http.delete(f"/api/v1/images/{image_id}/tags/cat")
    assert error_code(delete_anon, 401) == "UNAUTHORIZED"
    delete_other = await client.http.delete(
        f"/api/v1/images/{image_id}/tags/cat", headers=auth(stranger)
    )
    assert error_code(delete_other, 403) == "FORBIDDEN"
    delete_unknown = await client.http.delete(
        f"/api/v1/images/{unknown}/tags/cat", headers=auth(token)
    )
    assert error_code(delete_unknown, 404) == "IMAGE_NOT_FOUND"
    bad_limit = await client.http.get("/api/v1/tags", params={"limit": "0"})
    assert error_code(bad_limit, 422) == "VALIDATION_ERROR"
    bad_limit = await client.http.get("/api/v1/tags/popular", params={"limit": "x"})
    assert error_code(bad_limit, 422) == "VALIDATION_ERROR"


async def test_tag_listing_popular_and_search(client: Client) -> None:
    token = await client.token()
    first = await client.upload(token, 1)
    second = await client.upload(token, 2)
    for image_id, names in ((first, ["sunset", "sun", "beach"]), (second, ["sun"])):
        for name in names:
            assert (await client.tag(token, image_id, name)).status_code == 201
    tags = (await client.http.get("/api/v1/tags", headers=auth(token))).json()
    assert [t["name"] for t in tags] == ["beach", "sun", "sunset"]
    assert set(tags[0]) == {"id", "name", "category", "created_at"}
    popular = (
        await client.http.get("/api/v1/tags/popular", params={"limit": 2}, headers=auth(token))
    ).json()
    assert popular == [
        {"name": "sun", "category": None, "count": 2},
        {"name": "beach", "category": None, "count": 1},
    ]
    found = (
        await client.http.get("/api/v1/tags/search", params={"q": "SU"}, headers=auth(token))
    ).json()
    assert [t["name"] for t in found] == ["sun", "sunset"]
    assert (await client.http.get("/api/v1/tags/search", headers=auth(token))).json() == []
    await client.http.delete(f"/api/v1/images/{second}", headers=auth(token))
    popular = (await client.http.get("/api/v1/tags/popular", headers=auth(token))).json()
    assert {p["name"]: p["count"] for p in popular} == {"sun": 1, "beach": 1, "sunset": 1}


async def test_the_owner_filters_images_by_tags_and_text_with_cursors(client: Client) -> None:
    token = await client.token()
    other = await client.token()
    ids = [await client.upload(token, 10 + i, filename=f"trip-{i}.png") for i in range(5)]
    plain = await client.upload(token, 20, filename="plain.png")
    theirs = await client.upload(other, 21, filename="trip-x.png")
    for image_id in ids:
        assert (await client.tag(token, image_id, "cat")).status_code == 201
    assert (await client.tag(token, ids[0], "beach")).status_code == 201
    assert (await client.tag(other, theirs, "cat")).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"tag": "cat", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.http.get("/api/v1/images", params=params, headers=auth(token))).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    both = await client.http.get(
        "/api/v1/images", params=[("tag", "cat"), ("tag", "BEACH")], headers=auth(token)
    )
    assert [i["id"] for i in both.json()["items"]] == [ids[0]]
    text = await client.http.get("/api/v1/images", params={"q": "PLAIN"}, headers=auth(token))
    assert [i["id"] for i in text.json()["items"]] == [plain]
    by_prefix = await client.http.get("/api/v1/images", params={"q": "bea"}, headers=auth(token))
    assert [i["id"] for i in by_prefix.json()["items"]] == [ids[0]]
    bad = await client.http.get("/api/v1/images", params={"tag": "no!"}, headers=auth(token))
    assert error_code(bad, 422) == "VALIDATION_ERROR"


async def test_ai_tag_runs_the_taggers_and_is_503_while_they_are_down(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    async with serving(tmp_path, taggers=("openai",), openai_base_url=openai.base_url) as client:
        token = await client.token()
        stranger = await client.token()
        image_id = await client.upload(token)
        openai.down()
        down = await client.http.post(f"/api/v1/images/{image_id}/ai-tag", headers=auth(token))
        assert error_code(down, 503) == "PROVIDER_UNAVAILABLE"
        assert "Retry-After" in down.headers
        openai.up()
        resp = await client.http.post(f"/api/v1/images/{image_id}/ai-tag", headers=auth(token))
        assert resp.status_code == 200, resp.text
        assert [(t["name"], t["source"], t["confidence"]) for t in resp.json()] == [
            ("cat", "ai", 90),
            ("dog", "ai", 90),
            ("sunny beach", "ai", 90),
        ]
        forbidden = await client.http.post(
            f"/api/v1/images/{image_id}/ai-tag", headers=auth(stranger)
        )
        assert error_code(forbidden, 403) == "FORBIDDEN"
        anonymous = await client.http.post(f"/api/v1/images/{image_id}/ai-tag")
        assert error_code(anonymous, 401) == "UNAUTHORIZED"


async def test_ai_tag_is_rate_limited_per_user_and_decodes_in_the_image_engine(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    async with serving(
        tmp_path,
        taggers=("openai",),
        openai_base_url=openai.base_url,
        ai_tag_rate_limit=RateLimit(2, 60),
    ) as client:
        token, other = await client.token(), await client.token()
        image_id, other_image = await client.upload(token), await client.upload(other)
        engine = client.chitram.engine
        assert "tag_input" not in engine.jobs_by_op
        for _ in range(2):
            resp = await client.http.post(f"/api/v1/images/{image_id}/ai-tag", headers=auth(token))
            assert resp.status_code == 200, resp.text
        # Each call's decode was a job of the image engine's worker processes.
        assert engine.jobs_by_op["tag_input"] == 2
        limited = await client.http.post(f"/api/v1/images/{image_id}/ai-tag", headers=auth(token))
        assert error_code(limited, 429) == "RATE_LIMIT_EXCEEDED"
        assert "Retry-After" in limited.headers
        assert engine.jobs_by_op["tag_input"] == 2  # refused before any decode
        theirs = await client.http.post(f"/api/v1/images/{other_image}/ai-tag", headers=auth(other))
        assert theirs.status_code == 200, theirs.text


async def test_ai_tag_without_taggers_has_nothing_to_run(client: Client) -> None:
    token = await client.token()
    image_id = await client.upload(token)
    resp = await client.http.post(f"/api/v1/images/{image_id}/ai-tag", headers=auth(token))
    assert resp.status_code == 200 and resp.json() == []


async def test_an_upload_while_the_model_is_down_answers_201_and_is_tagged_later(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    async with serving(
        tmp_path, background=True, taggers=("openai",), openai_base_url=openai.base_url
    ) as client:
        token = await client.token()
        openai.down()
        image_id = await client.upload(token, 5)  # asserts 201
        assert (await client.http.get(f"/api/v1/images/{image_id}/tags")).json() == []
        openai.up()
        with anyio.fail_after(60):  # a hang guard, not a performance assertion
            while True:
                page = await client.http.get(
                    "/api/v1/images", params={"tag": "cat"}, headers=auth(token)
                )
                if [i["id"] for i in page.json()["items"]] == [image_id]:
                    break
                await anyio.sleep(0.05)
        found = await client.http.get("/api/v1/images", params={"q": "sunny"}, headers=auth(token))
        assert [i["id"] for i in found.json()["items"]] == [image_id]


async def test_identical_uploads_are_separate_images_with_their_own_tags(client: Client) -> None:
    # v1's clients upload the same bytes several times and tag each copy; the shared blob
    # (content-hash dedup) must not merge the images' tags or their popular counts.
    token = await client.token()
    copies = [await client.upload(token, seed=3, filename=f"copy{i}.png") for i in range(3)]
    assert len(set(copies)) == 3
    for count, name in ((3, "sunset"), (2, "nature"), (1, "mountain")):
        for image_id in copies[:count]:
            assert (await client.tag(token, image_id, name)).status_code == 201
    popular = (await client.http.get("/api/v1/tags/popular", headers=auth(token))).json()
    assert [(p["name"], p["count"]) for p in popular] == [
        ("sunset", 3),
        ("nature", 2),
        ("mountain", 1),
    ]
    last = (await client.http.get(f"/api/v1/images/{copies[2]}/tags")).json()
    assert [t["name"] for t in last] == ["sunset"]


async def test_http_ids_that_are_not_uuids_and_names_measured_after_trimming(
    client: Client,
) -> None:
    token = await client.token()
    assert error_code(await client.tag(token, "nonexistent-id", "dog"), 404) == "IMAGE_NOT_FOUND"
    gone = await client.http.delete("/api/v1/images/nonexistent-id/tags/dog", headers=auth(token))
    assert error_code(gone, 404) == "IMAGE_NOT_FOUND"
    image_id = await client.upload(token)
    # v1 measured 2..50 before trimming, so "  a  " became the 1-character tag "a"; we trim first.
    assert error_code(await client.tag(token, image_id, "  a  "), 422) == "VALIDATION_ERROR"
    padded = await client.tag(token, image_id, "  " + "x" * 50 + "  ")
    assert padded.status_code == 201 and padded.json()["name"] == "x" * 50
