"""List and delete: pagination, ownership and the v1 delete rules in their order."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from httpkit import Env, assert_error, bearer, open_env, png_bytes

pytestmark = pytest.mark.anyio


async def test_list_pages_through_the_callers_images_newest_first(env: Env) -> None:
    token = await env.register()
    other = await env.register()
    ids = [(await env.uploaded(token, png_bytes(10 + i, 10)))["id"] for i in range(5)]
    await env.uploaded(other, png_bytes(99, 9))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        resp = await env.client.get("/api/v1/images", params=params, headers=bearer(token))
        assert resp.status_code == 200
        body = resp.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert pages == 3


async def test_list_default_limit_and_empty(env: Env) -> None:
    token = await env.register()
    resp = await env.client.get("/api/v1/images", headers=bearer(token))
    assert resp.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
async def test_list_limit_outside_1_to_100_is_422(env: Env, limit: str) -> None:
    token = await env.register()
    resp = await env.client.get("/api/v1/images", params={"limit": limit}, headers=bearer(token))
    assert_error(resp, 422, "VALIDATION_ERROR")


async def test_list_with_a_garbage_cursor_is_4xx(env: Env) -> None:
    token = await env.register()
    resp = await env.client.get(
        "/api/v1/images", params={"cursor": "!!garbage!!"}, headers=bearer(token)
    )
    assert resp.status_code in {400, 422}
    assert resp.json()["detail"]["code"] in {"INVALID_REQUEST", "VALIDATION_ERROR"}


async def test_list_needs_a_bearer(env: Env) -> None:
    resp = await env.client.get("/api/v1/images")
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_trailing_slash_is_the_same_route(env: Env) -> None:
    token = await env.register()
    resp = await env.client.get("/api/v1/images/", headers=bearer(token))
    assert resp.status_code == 200


# delete rules, in v1 order ----------------------------------------------------------------


async def test_delete_unknown_id_is_404_before_anything_else(env: Env) -> None:
    resp = await env.client.delete(f"/api/v1/images/{uuid.uuid4()}")
    assert_error(resp, 404, "IMAGE_NOT_FOUND")
    resp = await env.client.delete("/api/v1/images/not-a-uuid", params={"delete_token": "x"})
    assert_error(resp, 404, "IMAGE_NOT_FOUND")


async def test_owner_deletes_with_204_and_the_image_is_gone(env: Env) -> None:
    token = await env.register()
    image = await env.uploaded(token)
    resp = await env.client.delete(f"/api/v1/images/{image['id']}", headers=bearer(token))
    assert resp.status_code == 204 and resp.content == b""
    assert_error(await env.client.get(image["url"]), 404, "IMAGE_NOT_FOUND")
    assert_error(await env.client.get(image["thumbnail_url"]), 404, "IMAGE_NOT_FOUND")
    assert_error(await env.client.get(f"/api/v1/images/{image['id']}"), 404, "IMAGE_NOT_FOUND")
    again = await env.client.delete(f"/api/v1/images/{image['id']}", headers=bearer(token))
    assert_error(again, 404, "IMAGE_NOT_FOUND")


async def test_someone_elses_image_is_403_forbidden(env: Env) -> None:
    owner, stranger = await env.register(), await env.register()
    image = await env.uploaded(owner)
    resp = await env.client.delete(f"/api/v1/images/{image['id']}", headers=bearer(stranger))
    assert_error(resp, 403, "FORBIDDEN")
    resp = await env.client.delete(f"/api/v1/images/{image['id']}")
    assert_error(resp, 403, "FORBIDDEN")
    resp = await env.client.delete(
        f"/api/v1/images/{image['id']}", params={"delete_token": "guess"}
    )
    assert_error(resp, 403, "FORBIDDEN")
    assert (await env.client.get(image["url"])).status_code == 200


async def test_anonymous_image_delete_rules(tmp_path: Path) -> None:
    async with open_env(tmp_path, allow_anonymous_uploads=True) as env:
        image = await env.uploaded(None)
        path = f"/api/v1/images/{image['id']}"
        assert_error(await env.client.delete(path), 403, "DELETE_TOKEN_REQUIRED")
        user = await env.register()
        assert_error(
            await env.client.delete(path, headers=bearer(user)), 403, "DELETE_TOKEN_REQUIRED"
        )
        assert_error(
            await env.client.delete(path, params={"delete_token": "wrong"}),
            403,
            "INVALID_DELETE_TOKEN",
        )
        ok = await env.client.delete(path, params={"delete_token": image["delete_token"]})
        assert ok.status_code == 204
        reuse = await env.client.delete(path, params={"delete_token": image["delete_token"]})
        assert_error(reuse, 404, "IMAGE_NOT_FOUND")


async def test_delete_with_a_bad_bearer_is_401_not_anonymous(tmp_path: Path) -> None:
    async with open_env(tmp_path, allow_anonymous_uploads=True) as env:
        image = await env.uploaded(None)
        resp = await env.client.delete(
            f"/api/v1/images/{image['id']}",
            params={"delete_token": image["delete_token"]},
            headers=bearer("bad"),
        )
        assert_error(resp, 401, "INVALID_TOKEN")
