"""The auth routes: register, login, token, refresh, logout, me, password-reset."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from httpkit import PASSWORD, Env, assert_error, bearer, open_env

from chitram_core import RateLimit
from chitram_core.auth import tokens

pytestmark = pytest.mark.anyio

AUTH = "/api/v1/auth"


async def _register(env: Env, email: str = "ada@example.com", password: str = PASSWORD) -> dict:
    resp = await env.client.post(f"{AUTH}/register", json={"email": email, "password": password})
    assert resp.status_code == 201, resp.text
    body: dict = resp.json()
    return body


async def test_register_is_201_with_an_auth_response(env: Env) -> None:
    body = await _register(env)
    assert set(body) == {"user", "access_token", "token_type", "refresh_token", "expires_in"}
    assert body["token_type"] == "bearer"
    assert set(body["user"]) == {"id", "email", "is_active", "created_at"}
    assert body["user"]["email"] == "ada@example.com" and body["user"]["is_active"] is True
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0


async def test_register_same_email_any_case_is_400_email_exists(env: Env) -> None:
    await _register(env)
    resp = await env.client.post(
        f"{AUTH}/register", json={"email": "ADA@Example.com", "password": PASSWORD}
    )
    assert_error(resp, 400, "EMAIL_EXISTS")


@pytest.mark.parametrize(
    ("email", "password", "code"),
    [
        ("not-an-email", PASSWORD, "INVALID_EMAIL"),
        ("b@example.com", "short", "WEAK_PASSWORD"),
        ("b@example.com", "x" * 1025, "WEAK_PASSWORD"),
    ],
)
async def test_register_rules_are_422(env: Env, email: str, password: str, code: str) -> None:
    resp = await env.client.post(f"{AUTH}/register", json={"email": email, "password": password})
    assert_error(resp, 422, code)


@pytest.mark.parametrize(
    "body", [{}, {"email": "a@example.com"}, {"email": 1, "password": PASSWORD}, [1, 2]]
)
async def test_missing_or_mistyped_fields_are_422(env: Env, body: object) -> None:
    resp = await env.client.post(f"{AUTH}/register", json=body)
    assert_error(resp, 422, "VALIDATION_ERROR")


async def test_invalid_json_is_422(env: Env) -> None:
    for content, ctype in (
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"a=b", "text/plain"),
    ):
        resp = await env.client.post(
            f"{AUTH}/login", content=content, headers={"Content-Type": ctype}
        )
        assert_error(resp, 422, "VALIDATION_ERROR")


async def test_oversized_auth_body_is_413(env: Env) -> None:
    resp = await env.client.post(
        f"{AUTH}/login", json={"email": "a@example.com", "password": "x" * 100_000}
    )
    assert_error(resp, 413, "FILE_TOO_LARGE")


async def test_long_password_round_trips(env: Env) -> None:
    password = ("violet tractor ü minus " * 60)[:999] + "z"
    await _register(env, "long@example.com", password)
    resp = await env.client.post(
        f"{AUTH}/login", json={"email": "long@example.com", "password": password}
    )
    assert resp.status_code == 200


async def test_login_with_any_email_case(env: Env) -> None:
    await _register(env)
    resp = await env.client.post(
        f"{AUTH}/login", json={"email": "Ada@EXAMPLE.com", "password": PASSWORD}
    )
    assert resp.status_code == 200
    assert resp.json()["user"]["email"].lower() == "ada@example.com"


@pytest.mark.parametrize("email", ["ada@example.com", "nobody@example.com"])
async def test_wrong_credentials_are_401_with_www_authenticate(env: Env, email: str) -> None:
    await _register(env)
    resp = await env.client.post(
        f"{AUTH}/login", json={"email": email, "password": "wrong password"}
    )
    assert_error(resp, 401, "INVALID_CREDENTIALS")
    assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_token_route_takes_the_oauth2_password_form(env: Env) -> None:
    await _register(env)
    resp = await env.client.post(
        f"{AUTH}/token", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "token_type"} and body["token_type"] == "bearer"
    me = await env.client.get(f"{AUTH}/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    bad = await env.client.post(
        f"{AUTH}/token", data={"username": "ada@example.com", "password": "nope nope"}
    )
    assert_error(bad, 401, "INVALID_CREDENTIALS")
    missing = await env.client.post(f"{AUTH}/token", data={"username": "ada@example.com"})
    assert_error(missing, 422, "VALIDATION_ERROR")


async def test_me_returns_the_user(env: Env) -> None:
    session = await _register(env)
    resp = await env.client.get(f"{AUTH}/me", headers=bearer(session["access_token"]))
    assert resp.status_code == 200
    usage = {"bytes": 0, "images": 0, "quota_bytes": None, "quota_images": None}
    assert resp.json() == session["user"] | {"usage": usage}


async def test_me_without_a_token_is_401_unauthorized(env: Env) -> None:
    resp = await env.client.get(f"{AUTH}/me")
    assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["www-authenticate"] == 'Bearer realm="chitram"'


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer ", "Basic Zm9vOmJhcg==", "Token x"])
async def test_me_with_a_bad_token_is_401_invalid_token(env: Env, header: str) -> None:
    resp = await env.client.get(f"{AUTH}/me", headers={"Authorization": header})
    assert_error(resp, 401, "INVALID_TOKEN")
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]


async def test_expired_token_is_401_token_expired(env: Env) -> None:
    session = await _register(env)
    claims = tokens.unverified_claims(session["access_token"])
    assert claims is not None
    settings = env.chitram.settings
    expired = tokens.encode_access_token(
        secret=settings.jwt_secret,
        issuer=settings.jwt_issuer,
        subject=claims["sub"],
        email=claims.get("email", ""),
        session_id=claims.get("sid", ""),
        now=time.time() - 7200,
        ttl=60,
    )
    resp = await env.client.get(f"{AUTH}/me", headers=bearer(expired))
    assert_error(resp, 401, "TOKEN_EXPIRED")
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    upload = await env.upload(expired)
    assert_error(upload, 401, "TOKEN_EXPIRED")


async def test_refresh_rotates_the_refresh_token(env: Env) -> None:
    session = await _register(env)
    resp = await env.client.post(
        f"{AUTH}/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert resp.status_code == 200
    rotated = resp.json()
    assert rotated["refresh_token"] != session["refresh_token"]
    reuse = await env.client.post(
        f"{AUTH}/refresh", json={"refresh_token": session["refresh_token"]}
    )
    # Within the reuse interval (10 s): the same successor, as GoTrue answers.
    assert reuse.status_code == 200
    assert reuse.json()["refresh_token"] == rotated["refresh_token"]
    assert_error(await env.client.post(f"{AUTH}/refresh", json={}), 422, "VALIDATION_ERROR")
    garbage = await env.client.post(f"{AUTH}/refresh", json={"refresh_token": "garbage"})
    assert garbage.status_code == 401


async def test_logout_is_204_and_revokes_the_refresh_token(env: Env) -> None:
    session = await _register(env)
    resp = await env.client.post(
        f"{AUTH}/logout",
        json={"refresh_token": session["refresh_token"]},
        headers=bearer(session["access_token"]),
    )
    assert resp.status_code == 204 and resp.content == b""
    after = await env.client.post(
        f"{AUTH}/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert after.status_code == 401


async def test_logout_without_a_body_revokes_the_session(env: Env) -> None:
    session = await _register(env)
    resp = await env.client.post(f"{AUTH}/logout", headers=bearer(session["access_token"]))
    assert resp.status_code == 204
    after = await env.client.post(
        f"{AUTH}/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert after.status_code == 401


async def test_logout_needs_a_bearer(env: Env) -> None:
    assert_error(await env.client.post(f"{AUTH}/logout"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("email", ["ada@example.com", "nobody@example.com"])
async def test_password_reset_is_202_whether_or_not_the_email_exists(env: Env, email: str) -> None:
    await _register(env)
    resp = await env.client.post(f"{AUTH}/password-reset", json={"email": email})
    assert resp.status_code == 202
    assert resp.json() == {
        "message": "If an account exists for this email, a password reset link has been sent"
    }


async def test_password_reset_with_a_malformed_email_is_422(env: Env) -> None:
    resp = await env.client.post(f"{AUTH}/password-reset", json={"email": "nope"})
    assert_error(resp, 422, "INVALID_EMAIL")


# rate limits -------------------------------------------------------------------------------


async def test_login_is_rate_limited_per_email(tmp_path: Path) -> None:
    async with open_env(tmp_path, auth_rate_limit=RateLimit(3, 60)) as env:
        await _register(env)
        statuses = []
        for i in range(4):
            resp = await env.client.post(
                f"{AUTH}/login",
                json={
                    "email": "ADA@example.com" if i % 2 else "ada@example.com",
                    "password": "wrong password",
                },
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            )
            statuses.append(resp.status_code)
        assert statuses[:3] == [401, 401, 401]
        detail = assert_error(resp, 429, "RATE_LIMIT_EXCEEDED")
        assert detail["details"]["limit"] == 3
        assert int(resp.headers["retry-after"]) >= 1
        assert resp.headers["x-ratelimit-remaining"] == "0"


async def test_login_is_rate_limited_per_client(tmp_path: Path) -> None:
    async with open_env(tmp_path, auth_rate_limit=RateLimit(2, 60)) as env:
        for i in range(2):
            resp = await env.client.post(
                f"{AUTH}/login", json={"email": f"u{i}@example.com", "password": "wrong pass"}
            )
            assert resp.status_code == 401
            assert resp.headers["x-ratelimit-limit"] == "2"
        resp = await env.client.post(
            f"{AUTH}/login", json={"email": "u9@example.com", "password": "wrong pass"}
        )
        assert_error(resp, 429, "RATE_LIMIT_EXCEEDED")


async def test_register_is_rate_limited(tmp_path: Path) -> None:
    async with open_env(tmp_path, auth_rate_limit=RateLimit(1, 60)) as env:
        first = await env.client.post(
            f"{AUTH}/register", json={"email": "a@example.com", "password": PASSWORD}
        )
        assert first.status_code == 201
        assert first.headers["x-ratelimit-remaining"] == "0"
        second = await env.client.post(
            f"{AUTH}/register", json={"email": "b@example.com", "password": PASSWORD}
        )
        assert_error(second, 429, "RATE_LIMIT_EXCEEDED")
        assert "retry-after" in second.headers


async def test_trusted_proxy_forwarded_address_gets_its_own_bucket(tmp_path: Path) -> None:
    async with open_env(
        tmp_path, auth_rate_limit=RateLimit(1, 60), trusted_proxies=("127.0.0.1",)
    ) as env:
        for i in range(3):
            resp = await env.client.post(
                f"{AUTH}/login",
                json={"email": f"u{i}@example.com", "password": "wrong pass"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            )
            assert resp.status_code == 401
