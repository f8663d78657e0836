"""Supabase tokens against the fake GoTrue: signing out stops the copied cookie and the old
access token at once, and a token the server cannot verify locally costs at most one GoTrue call
per token per minute, however often it is presented."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from oauthkit import FakeGoTrue, gotrue_settings
from webkit import PASSWORD, WebEnv, open_web, session_payload

from chitram_core.db import sessions as session_sql

pytestmark = pytest.mark.anyio

ME = "/api/v1/auth/me"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def gotrue_server() -> Iterator[FakeGoTrue]:
    fake = FakeGoTrue()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def gotrue(gotrue_server: FakeGoTrue) -> FakeGoTrue:
    gotrue_server.reset()
    gotrue_server.site_url = "http://testserver"
    return gotrue_server


@pytest.fixture
async def web(tmp_path: Path, gotrue: FakeGoTrue) -> AsyncIterator[WebEnv]:
    async with open_web(tmp_path, **gotrue_settings(gotrue)) as env:
        yield env


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_calls(gotrue: FakeGoTrue) -> int:
    return sum(1 for _, path, _ in gotrue.requests if path == "/auth/v1/user")


# Sign-out -------------------------------------------------------------------------------------


async def test_sign_out_stops_the_copied_cookie_and_the_old_access_token(
    web: WebEnv, gotrue: FakeGoTrue
) -> None:
    await web.register()
    cookie = web.client.cookies["chitram_session"]
    stolen = session_payload(cookie)
    assert str(stolen["a"]).count(".") == 2  # a Supabase JWT, verified here with the secret
    assert (await web.client.get(ME, headers=bearer(stolen["a"]))).status_code == 200
    token = await web.form("/")
    assert (await web.client.post("/signout", data={"csrf_token": token})).status_code == 303
    me = await web.client.get(ME, headers=bearer(stolen["a"]))
    assert me.status_code == 401
    assert me.json()["detail"]["code"] == "INVALID_TOKEN"
    web.client.cookies.clear()
    web.client.cookies.set("chitram_session", cookie)  # the copy, in another browser
    assert (await web.client.get("/")).status_code == 303
    assert (await web.client.get("/ui/api/images")).status_code == 401


async def test_api_logout_stops_the_access_token_even_while_gotrue_is_down(
    web: WebEnv, gotrue: FakeGoTrue
) -> None:
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    creds = {"email": email, "password": PASSWORD}
    assert (await web.client.post("/api/v1/auth/register", json=creds)).status_code == 201
    session = (await web.client.post("/api/v1/auth/login", json=creds)).json()
    access = session["access_token"]
    assert (await web.client.get(ME, headers=bearer(access))).status_code == 200
    gotrue.mode = "down"
    out = await web.client.post("/api/v1/auth/logout", headers=bearer(access))
    assert out.status_code in {204, 503}
    assert (await web.client.get(ME, headers=bearer(access))).status_code == 401


async def test_the_sweep_forgets_sign_outs_whose_tokens_have_expired(web: WebEnv) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with web.chitram.database.transaction() as conn:
        await session_sql.revoke(conn, "a" * 64, past)
        await session_sql.revoke(conn, "b" * 64, past + timedelta(hours=1))
    report = await web.chitram.sweep()
    assert report.revocations_expired == 1
    assert (await web.chitram.sweep()).revocations_expired == 0


# Tokens checked with GoTrue ----------------------------------------------------------------------


def bogus_es256(gotrue: FakeGoTrue) -> str:
    now = int(time.time())
    claims = {
        "iss": gotrue.issuer,
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "session_id": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 3600,
    }
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, other, algorithm="ES256", headers={"kid": gotrue.kid})


async def test_a_bogus_token_costs_one_gotrue_call_however_often_it_comes(
    web: WebEnv, gotrue: FakeGoTrue
) -> None:
    tokens = [bogus_es256(gotrue) for _ in range(2)]
    before = user_calls(gotrue)
    for _ in range(10):
        for token in tokens:
            resp = await web.client.get(ME, headers=bearer(token))
            assert resp.status_code == 401
            assert resp.json()["detail"]["code"] == "INVALID_TOKEN"
    assert user_calls(gotrue) - before == 2  # 20 requests, one call per token


async def test_a_good_token_only_gotrue_can_check_is_checked_once(
    web: WebEnv, gotrue: FakeGoTrue
) -> None:
    gotrue.algorithm = "ES256"  # signed with a key the server does not have (no JWKS URL)
    user = gotrue.add_user(f"{uuid.uuid4().hex[:8]}@example.com", PASSWORD)
    token = gotrue.access_token(user, str(uuid.uuid4()))
    before = user_calls(gotrue)
    for _ in range(5):
        resp = await web.client.get(ME, headers=bearer(token))
        assert resp.status_code == 200, resp.text
        assert resp.json()["email"] == user["email"]
    assert user_calls(gotrue) - before == 1


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_sign_out_on_one_instance_is_refused_by_another_at_once(
    tmp_path: Path, gotrue: FakeGoTrue, fresh_postgres_url: str, redis_url: str
) -> None:
    """Two apps over one PostgreSQL and one Redis, as two processes of a fleet, neither able to
    verify the token alone (no project secret): B asked GoTrue once and remembers the answer
    for a minute, yet the sign-out through A is refused by B on the next request."""
    shared = {k: v for k, v in gotrue_settings(gotrue).items() if k != "supabase_jwt_secret"}
    separator = "&" if "?" in redis_url else "?"
    shared |= {
        "database_url": fresh_postgres_url,
        "cache_url": f"{redis_url}{separator}prefix=chitram-test-{uuid.uuid4().hex[:12]}:",
    }
    async with (
        open_web(tmp_path / "a", auto_migrate=True, **shared) as a,
        open_web(tmp_path / "b", auto_migrate=False, **shared) as b,
    ):
        creds = {"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
        assert (await a.client.post("/api/v1/auth/register", json=creds)).status_code == 201
        access = (await a.client.post("/api/v1/auth/login", json=creds)).json()["access_token"]
        before = user_calls(gotrue)
        for _ in range(3):
            assert (await b.client.get(ME, headers=bearer(access))).status_code == 200
        assert user_calls(gotrue) - before == 1  # B remembers GoTrue's yes

        out = await a.client.post("/api/v1/auth/logout", headers=bearer(access))
        assert out.status_code == 204, out.text
        for env in (b, a):
            me = await env.client.get(ME, headers=bearer(access))
            assert me.status_code == 401, me.text
            assert me.json()["detail"]["code"] == "INVALID_TOKEN"
