"""Nobody else's wrong passwords lock a user out: sign-ins are limited per client address and
per (email, client address), and an email under attack refuses only the clients failing at it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from httpkit import PASSWORD, Env, assert_error, open_env

from chitram_core import RateLimit

pytestmark = pytest.mark.anyio

AUTH = "/api/v1/auth"
VICTIM = "victim@example.com"


def client_for(env: Env, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=env.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def login(env: Env, address: str, password: str, *, form: bool = False) -> httpx.Response:
    async with client_for(env, address) as client:
        if form:
            return await client.post(
                f"{AUTH}/token", data={"username": VICTIM, "password": password}
            )
        return await client.post(f"{AUTH}/login", json={"email": VICTIM, "password": password})


@pytest.mark.parametrize("form", [False, True])
async def test_wrong_passwords_from_many_addresses_never_lock_the_owner_out(
    tmp_path: Path, form: bool
) -> None:
    async with open_env(tmp_path, auth_rate_limit=RateLimit(10, 60)) as env:
        await env.register(VICTIM)
        for i in range(30):  # 30 addresses, one wrong password each, some in another case
            resp = await login(env, f"203.0.113.{i + 1}", "wrong password!", form=form)
            assert resp.status_code == 401, resp.text
        owner = await login(env, "198.51.100.20", PASSWORD, form=form)
        assert owner.status_code == 200, owner.text


async def test_a_client_s_own_attempts_are_still_limited(tmp_path: Path) -> None:
    async with open_env(tmp_path, auth_rate_limit=RateLimit(3, 60)) as env:
        await env.register(VICTIM)
        statuses = [(await login(env, "203.0.113.5", "wrong password!")).status_code]
        statuses += [(await login(env, "203.0.113.5", "wrong password!")).status_code]
        statuses += [(await login(env, "203.0.113.5", "wrong password!")).status_code]
        fourth = await login(env, "203.0.113.5", PASSWORD)
        assert statuses == [401, 401, 401]
        assert_error(fourth, 429, "RATE_LIMIT_EXCEEDED")
        assert (await login(env, "203.0.113.6", PASSWORD)).status_code == 200


async def test_an_email_under_attack_refuses_only_the_clients_failing_at_it(
    tmp_path: Path,
) -> None:
    async with open_env(
        tmp_path, auth_rate_limit=RateLimit(100, 60), login_guard=RateLimit(10, 900)
    ) as env:
        await env.register(VICTIM)
        for _ in range(3):  # one guesser, three failures of its own
            assert (await login(env, "203.0.113.1", "wrong password!")).status_code == 401
        # Before the email is under attack, the guesser may go on.
        assert (await login(env, "203.0.113.1", "wrong password!")).status_code == 401
        for i in range(6):  # a spread of guessers puts the email over 10 failures
            assert (await login(env, f"203.0.113.{i + 10}", "wrong!!!!")).status_code == 401
        blocked = await login(env, "203.0.113.1", PASSWORD)
        detail = assert_error(blocked, 429, "RATE_LIMIT_EXCEEDED")
        assert "failed sign-ins" in detail["message"]
        assert blocked.headers["Retry-After"] == "900"
        # The owner, with a typo of their own, still gets in; so does any fresh address.
        assert (await login(env, "198.51.100.20", "typo typo typo")).status_code == 401
        assert (await login(env, "198.51.100.20", PASSWORD)).status_code == 200
        assert (await login(env, "198.51.100.21", PASSWORD)).status_code == 200


async def test_the_guard_can_be_turned_off(tmp_path: Path) -> None:
    async with open_env(tmp_path, login_guard=None) as env:
        await env.register(VICTIM)
        for _ in range(30):
            assert (await login(env, "203.0.113.1", "wrong password!")).status_code == 401
        assert (await login(env, "203.0.113.1", PASSWORD)).status_code == 200
