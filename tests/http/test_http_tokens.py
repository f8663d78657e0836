"""Personal API tokens and quotas over HTTP: every scope against every class of route."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from httpkit import Env, assert_error, bearer, png_bytes

from chitram_core.auth.api_tokens import PREFIX, SCOPES
from chitram_core.db.tables import api_tokens, utcnow

pytestmark = pytest.mark.anyio

API = "/api/v1"


async def make_token(
    env: Env, session: str, scopes: list[str], name: str = "script", **extra: Any
) -> dict[str, Any]:
    resp = await env.client.post(
        f"{API}/auth/tokens",
        json={"name": name, "scopes": scopes, **extra},
        headers=bearer(session),
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_a_token_is_shown_once_listed_without_its_secret_and_revoked(env: Env) -> None:
    session = await env.register()
    made = await make_token(env, session, ["images:write", "images:read"], expires_in_days=30)
    assert set(made) == {"id", "name", "scopes", "token", "created_at", "expires_at"}
    assert made["token"].startswith(PREFIX) and len(made["token"]) > len(PREFIX) + 40
    assert made["scopes"] == ["images:read", "images:write"]
    assert made["expires_at"] is not None
    listed = await env.client.get(f"{API}/auth/tokens", headers=bearer(session))
    assert listed.status_code == 200
    [row] = listed.json()
    assert row == {k: v for k, v in made.items() if k != "token"}
    assert made["token"] not in listed.text
    async with env.chitram.database.connect() as conn:
        stored = (await conn.execute(sa.select(api_tokens.c.token_hash))).scalar_one()
    assert made["token"] not in stored and len(stored) == 64  # only a hash is kept

    me = await env.client.get(f"{API}/auth/me", headers=bearer(made["token"]))
    assert me.status_code == 200 and me.json()["usage"]["images"] == 0
    gone = await env.client.delete(f"{API}/auth/tokens/{made['id']}", headers=bearer(session))
    assert gone.status_code == 204
    assert_error(
        await env.client.get(f"{API}/auth/me", headers=bearer(made["token"])), 401, "INVALID_TOKEN"
    )
    again = await env.client.delete(f"{API}/auth/tokens/{made['id']}", headers=bearer(session))
    assert_error(again, 404, "NOT_FOUND")


async def test_tokens_cannot_make_list_or_revoke_tokens_or_manage_the_account(env: Env) -> None:
    session = await env.register()
    every = await make_token(env, session, list(SCOPES))
    token = bearer(every["token"])
    made = await env.client.post(
        f"{API}/auth/tokens", json={"name": "x", "scopes": ["images:read"]}, headers=token
    )
    assert_error(made, 403, "INSUFFICIENT_SCOPE")
    assert_error(
        await env.client.get(f"{API}/auth/tokens", headers=token), 403, "INSUFFICIENT_SCOPE"
    )
    revoke = await env.client.delete(f"{API}/auth/tokens/{every['id']}", headers=token)
    assert_error(revoke, 403, "INSUFFICIENT_SCOPE")
    logout = await env.client.post(f"{API}/auth/logout", headers=token)
    assert_error(logout, 403, "INSUFFICIENT_SCOPE")


async def test_a_token_of_another_user_cannot_be_revoked(env: Env) -> None:
    alice, bob = await env.register(), await env.register()
    made = await make_token(env, alice, ["images:read"])
    resp = await env.client.delete(f"{API}/auth/tokens/{made['id']}", headers=bearer(bob))
    assert_error(resp, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "scopes": ["images:read"]},
        {"name": "x" * 101, "scopes": ["images:read"]},
        {"name": "bad\ud800", "scopes": ["images:read"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": "images:read"},
        {"name": "x", "scopes": ["admin"]},
        {"name": "x", "scopes": [{"a": 1}]},
        {"name": "x", "scopes": ["images:read"], "expires_in_days": 0},
        {"name": "x", "scopes": ["images:read"], "expires_in_days": 1.5},
        {"name": "x", "scopes": ["images:read"], "expires_in_days": True},
        {"name": "x", "scopes": ["images:read"], "expires_in_days": 10**9},
        {"scopes": ["images:read"]},
    ],
)
async def test_a_bad_token_request_is_a_422(env: Env, body: dict[str, Any]) -> None:
    session = await env.register()
    resp = await env.client.post(  # json.dumps escapes a lone surrogate, as a client may send
        f"{API}/auth/tokens",
        content=json.dumps(body),
        headers={**bearer(session), "Content-Type": "application/json"},
    )
    assert_error(resp, 422, "VALIDATION_ERROR")


async def test_an_expired_token_and_a_disabled_users_token_are_401(env: Env) -> None:
    session = await env.register("expiring@example.com")
    made = await make_token(env, session, ["images:read"], expires_in_days=1)
    assert (await env.client.get(f"{API}/images", headers=bearer(made["token"]))).status_code == 200
    async with env.chitram.database.transaction() as conn:
        await conn.execute(sa.update(api_tokens).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = await env.client.get(f"{API}/images", headers=bearer(made["token"]))
    assert_error(expired, 401, "TOKEN_EXPIRED")
    other = await make_token(env, session, ["images:read"])
    await env.chitram.admin.disable_user("expiring@example.com")
    disabled = await env.client.get(f"{API}/images", headers=bearer(other["token"]))
    assert_error(disabled, 401, "USER_INACTIVE")
    forged = await env.client.get(f"{API}/images", headers=bearer(PREFIX + "A" * 43))
    assert_error(forged, 401, "INVALID_TOKEN")


# Every scope against every class of route -------------------------------------------------


@pytest.fixture
async def world(env: Env) -> AsyncIterator[dict[str, Any]]:
    session = await env.register()
    image = await env.uploaded(session)
    await env.client.post(
        f"{API}/images/{image['id']}/tags", json={"tag": "kept"}, headers=bearer(session)
    )
    tokens = {scope: (await make_token(env, session, [scope]))["token"] for scope in SCOPES}
    yield {"session": session, "image": image, "tokens": tokens}


def routes(image_id: str) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """(method, path, request options) of each route class, by the scope it needs."""
    upload = {"files": {"file": ("a.png", png_bytes(color="green"), "image/png")}}
    return {
        "images:read": [
            ("GET", f"{API}/images", {}),
            ("GET", f"{API}/images/{image_id}", {}),
            ("GET", f"{API}/images/{image_id}/file", {}),
            ("GET", f"{API}/images/{image_id}/thumbnail", {}),
            ("GET", f"{API}/images/{image_id}/tags", {}),
            ("GET", f"{API}/tags", {}),
            ("GET", f"{API}/tags/popular", {}),
            ("GET", f"{API}/tags/search?q=k", {}),
        ],
        "images:write": [("POST", f"{API}/images/upload", upload)],
        "tags:write": [
            ("POST", f"{API}/images/{image_id}/tags", {"json": {"tag": "added"}}),
            ("DELETE", f"{API}/images/{image_id}/tags/added", {}),
        ],
        "images:delete": [("DELETE", f"{API}/images/{image_id}", {})],
    }


async def call(
    env: Env, token: str, method: str, path: str, opts: dict[str, Any]
) -> httpx.Response:
    return await env.client.request(method, path, headers=bearer(token), **opts)


@pytest.mark.parametrize("scope", SCOPES)
async def test_each_scope_allows_its_routes_and_no_others(
    env: Env, world: dict[str, Any], scope: str
) -> None:
    token = world["tokens"][scope]
    table = routes(world["image"]["id"])
    for needed, entries in table.items():
        if needed in (scope, "images:delete"):
            continue  # the delete is tried last, below
        for method, path, opts in entries:
            resp = await call(env, token, method, path, opts)
            if needed == scope:
                assert resp.status_code < 400, (method, path, resp.text)
            else:
                assert_error(resp, 403, "INSUFFICIENT_SCOPE")
    [(method, path, opts)] = table["images:delete"]
    resp = await call(env, token, method, path, opts)
    if scope == "images:delete":
        assert resp.status_code == 204
    else:
        assert_error(resp, 403, "INSUFFICIENT_SCOPE")
    me = await env.client.get(f"{API}/auth/me", headers=bearer(token))
    assert me.status_code == 200  # any token may ask who it is and what it uses


async def test_a_write_token_uploads_but_cannot_delete(env: Env) -> None:
    session = await env.register()
    token = (await make_token(env, session, ["images:write"]))["token"]
    image = await env.uploaded(token)
    resp = await env.client.delete(f"{API}/images/{image['id']}", headers=bearer(token))
    assert_error(resp, 403, "INSUFFICIENT_SCOPE")
    assert (await env.client.get(f"{API}/images/{image['id']}")).status_code == 200
    made = await env.client.post(
        f"{API}/auth/tokens",
        json={"name": "more", "scopes": ["images:write"]},
        headers=bearer(token),
    )
    assert_error(made, 403, "INSUFFICIENT_SCOPE")


# Quotas over HTTP ----------------------------------------------------------------------------


async def test_me_shows_usage_and_an_upload_over_quota_is_413(env: Env) -> None:
    session = await env.register("q@example.com")
    image = await env.uploaded(session)
    await env.chitram.admin.set_quota("q@example.com", images=1, bytes=10**6)
    me = (await env.client.get(f"{API}/auth/me", headers=bearer(session))).json()
    assert me["usage"] == {
        "bytes": image["file_size"],
        "images": 1,
        "quota_bytes": 10**6,
        "quota_images": 1,
    }
    resp = await env.upload(session, png_bytes(color="blue"))
    detail = assert_error(resp, 413, "QUOTA_EXCEEDED")
    assert detail["details"]["quota_images"] == 1
    await env.client.delete(f"{API}/images/{image['id']}", headers=bearer(session))
    assert (await env.upload(session, png_bytes(color="blue"))).status_code == 201


async def test_a_declared_body_over_the_byte_quota_is_refused_before_it_is_read(env: Env) -> None:
    session = await env.register("early@example.com")
    await env.chitram.admin.set_quota("early@example.com", bytes=1000)
    sent: list[int] = []
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    size = 200_000

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(size // 10_000):
            sent.append(1)
            yield b"\0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = await env.client.post(
        f"{API}/images/upload",
        content=body(),
        headers={
            **bearer(session),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(boundary) + 8),
        },
    )
    assert_error(resp, 413, "QUOTA_EXCEEDED")
    assert sent == []  # not a byte of the file was asked for


async def test_url_and_resumable_uploads_need_images_write(env: Env) -> None:
    session = await env.register()
    writer = (await make_token(env, session, ["images:write"]))["token"]
    reader = (await make_token(env, session, ["images:read", "tags:write"]))["token"]
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "100"}
    refused_url = {"url": "http://127.0.0.1/cat.jpg"}
    for token, allowed in ((writer, True), (reader, False)):
        created = await env.client.post(f"{API}/uploads", headers={**tus, **bearer(token)})
        by_url = await env.client.post(
            f"{API}/images/upload-url", json=refused_url, headers=bearer(token)
        )
        if allowed:
            assert created.status_code == 201, created.text
            assert_error(by_url, 400, "URL_NOT_ALLOWED")  # past the scope, to the guard
        else:
            assert_error(created, 403, "INSUFFICIENT_SCOPE")
            assert_error(by_url, 403, "INSUFFICIENT_SCOPE")
