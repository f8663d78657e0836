"""The failover chain with the real providers: routing, failover, outages, health."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from auth_helpers import JWT_SECRET, PASSWORD, fast_hasher
from fake_gotrue import FakeGoTrue

from chitram_core.auth.chain import AuthChain
from chitram_core.auth.local import LocalProvider
from chitram_core.auth.passwords import Passwords
from chitram_core.auth.supabase import SupabaseProvider
from chitram_core.db import Database
from chitram_core.errors import (
    EmailExists,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    PluginError,
    ProviderUnavailable,
    TokenExpired,
)
from chitram_core.settings import Settings

LONG_PASSWORD = ("violet tractor é minus " * 60)[:999] + "z"

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def chain(
    settings: Settings, database: Database, http_client: httpx.AsyncClient, clock: Clock
) -> AsyncIterator[AuthChain]:
    providers = [
        SupabaseProvider(settings, http_client=http_client, passwords=Passwords(fast_hasher())),
        LocalProvider(settings, hasher=fast_hasher()),
    ]
    chain = await AuthChain.open(settings, database, providers=providers, clock=clock)
    yield chain
    await chain.close()


# Opening ---------------------------------------------------------------------------------------


async def test_open_loads_the_configured_providers_by_entry_point(
    settings: Settings, database: Database
) -> None:
    async with await AuthChain.open(settings, database) as chain:
        assert [type(p) for p in chain.providers] == [SupabaseProvider, LocalProvider]
    only_local = Settings(jwt_secret=JWT_SECRET)
    async with await AuthChain.open(only_local, database) as chain:
        assert [p.name for p in chain.providers] == ["local"]


async def test_a_configured_provider_that_does_not_exist_is_named(database: Database) -> None:
    with pytest.raises(PluginError, match="nosuch"):
        await AuthChain.open(Settings(auth_providers=("nosuch",)), database)


# Routing and failover --------------------------------------------------------------------------


async def test_register_goes_to_the_first_provider(chain: AuthChain, gotrue: FakeGoTrue) -> None:
    session = await chain.register("first@example.com", PASSWORD)
    assert session.user.provider == "supabase"
    assert "first@example.com" in gotrue.users


async def test_register_fails_over_when_supabase_is_down(
    chain: AuthChain, gotrue: FakeGoTrue
) -> None:
    gotrue.mode = "down"
    session = await chain.register("failover@example.com", PASSWORD)
    assert session.user.provider == "local"
    principal = await chain.authenticate(session.access_token)
    assert principal.provider == "local"


async def test_a_definite_refusal_does_not_fail_over(chain: AuthChain, gotrue: FakeGoTrue) -> None:
    gotrue.add_user("definite@example.com", PASSWORD)
    with pytest.raises(InvalidCredentials):
        await chain.login("definite@example.com", "wrong password")
    with pytest.raises(EmailExists):
        await chain.register("definite@example.com", PASSWORD)
    assert chain.breakers["supabase"].failures == 0


async def test_local_and_supabase_users_log_in_side_by_side(
    chain: AuthChain, gotrue: FakeGoTrue
) -> None:
    gotrue.mode = "down"
    local_user = await chain.register("local-user@example.com", PASSWORD)
    gotrue.mode = "up"
    remote_user = await chain.register("remote-user@example.com", PASSWORD)
    # A local user's login goes to the provider owning the row, not to Supabase first.
    assert (await chain.login("LOCAL-user@example.com", PASSWORD)).user.id == local_user.user.id
    assert (await chain.login("remote-user@example.com", PASSWORD)).user.id == remote_user.user.id
    for session in (local_user, remote_user):
        assert (await chain.authenticate(session.access_token)).user_id == session.user.id


async def test_tokens_go_to_their_issuer(chain: AuthChain, gotrue: FakeGoTrue) -> None:
    remote = await chain.register("issuer@example.com", PASSWORD)
    assert (await chain.authenticate(remote.access_token)).provider == "supabase"
    with pytest.raises(InvalidToken):
        await chain.authenticate("not-a-token")
    with pytest.raises(InvalidToken):
        await chain.authenticate(_token_from("https://elsewhere.example/auth/v1"))


async def test_refresh_tokens_go_to_their_issuer(chain: AuthChain, gotrue: FakeGoTrue) -> None:
    gotrue.mode = "down"
    local_session = await chain.register("refresh-local@example.com", PASSWORD)
    refreshed = await chain.refresh(local_session.refresh_token)  # Supabase never asked
    assert refreshed.user.id == local_session.user.id
    gotrue.mode = "up"
    remote = await chain.register("refresh-remote@example.com", PASSWORD)
    assert (await chain.refresh(remote.refresh_token)).user.id == remote.user.id


async def test_a_supabase_refresh_token_while_supabase_is_down_is_unavailable_not_invalid(
    chain: AuthChain, gotrue: FakeGoTrue
) -> None:
    remote = await chain.register("refresh-outage@example.com", PASSWORD)
    gotrue.mode = "down"
    with pytest.raises(ProviderUnavailable):
        await chain.refresh(remote.refresh_token)


async def test_logout_then_refresh_is_refused(chain: AuthChain, gotrue: FakeGoTrue) -> None:
    for mode in ("up", "down"):  # a Supabase user, then (Supabase down) a local one
        gotrue.mode = mode
        session = await chain.register(f"logout-{mode}@example.com", PASSWORD)
        principal = await chain.authenticate(session.access_token)
        await chain.logout(principal, session.refresh_token, access_token=session.access_token)
        gotrue.mode = "up"
        with pytest.raises(InvalidToken):
            await chain.refresh(session.refresh_token)


async def test_expired_tokens_are_token_expired_through_the_chain(
    chain: AuthChain, gotrue: FakeGoTrue
) -> None:
    await chain.register("expired-remote@example.com", PASSWORD)
    user = gotrue.users["expired-remote@example.com"]
    with pytest.raises(TokenExpired):
        await chain.authenticate(gotrue.access_token(user, "s", exp=1))


async def test_get_user(chain: AuthChain) -> None:
    session = await chain.register("get-user@example.com", PASSWORD)
    assert await chain.get_user(session.user.id) == session.user
    with pytest.raises(NotFound):
        await chain.get_user(str(uuid.uuid4()))


# Supabase goes down mid-session ----------------------------------------------------------------


async def test_supabase_goes_down_mid_session(
    chain: AuthChain, gotrue: FakeGoTrue, clock: Clock
) -> None:
    gotrue.mode = "down"
    local_user = await chain.register("stays-local@example.com", PASSWORD)
    gotrue.mode = "up"
    remote = await chain.register("supa@example.com", PASSWORD)
    await chain.login("supa@example.com", PASSWORD)

    gotrue.mode = "down"
    # The already-issued Supabase token still authenticates (verified locally).
    assert (await chain.authenticate(remote.access_token)).user_id == remote.user.id
    # Local users still log in.
    assert (await chain.login("stays-local@example.com", PASSWORD)).user.id == local_user.user.id
    # The Supabase user logs in locally with the hash saved at their last Supabase login.
    fallback = await chain.login("supa@example.com", PASSWORD)
    assert fallback.user.id == remote.user.id
    assert (await chain.authenticate(fallback.access_token)).provider == "local"
    with pytest.raises(InvalidCredentials):
        await chain.login("supa@example.com", "wrong password")

    # After enough failures the circuit opens: Supabase is no longer even called...
    for _ in range(3):
        await chain.login("supa@example.com", PASSWORD)
    assert chain.breakers["supabase"].state.value == "open"
    gotrue.requests.clear()
    await chain.login("supa@example.com", PASSWORD)
    assert gotrue.requests == []
    # ... tokens still check out, and health says which part is down.
    assert (await chain.authenticate(remote.access_token)).user_id == remote.user.id
    checks = await chain.checks()
    assert checks["supabase"].status == "unhealthy"
    assert checks["local"].status == "healthy"

    # Supabase recovers; after the cool-down one trial call closes the circuit again.
    gotrue.mode = "up"
    clock.now += 30
    session = await chain.login("supa@example.com", PASSWORD)
    assert (await chain.authenticate(session.access_token)).provider == "supabase"
    assert chain.breakers["supabase"].state.value == "closed"
    assert (await chain.checks())["supabase"].status == "healthy"


async def test_a_slow_supabase_fails_over_within_the_timeout(
    chain: AuthChain, gotrue: FakeGoTrue
) -> None:
    gotrue.mode, gotrue.delay = "slow", 3.0
    session = await chain.register("slow-day@example.com", PASSWORD)
    assert session.user.provider == "local"


async def test_checks_report_every_provider(chain: AuthChain) -> None:
    checks = await chain.checks()
    assert set(checks) == {"supabase", "local"}
    assert all(check.status == "healthy" for check in checks.values())
    assert "circuit closed" in (checks["supabase"].detail or "")


# PostgreSQL ------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_the_whole_flow_on_postgresql(
    postgres_session_url: str, settings: Settings, gotrue: FakeGoTrue
) -> None:
    database = Database(postgres_session_url)
    tag = uuid.uuid4().hex[:10]
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            providers = [
                SupabaseProvider(settings, http_client=http, passwords=Passwords(fast_hasher())),
                LocalProvider(settings, hasher=fast_hasher()),
            ]
            async with await AuthChain.open(settings, database, providers=providers) as chain:
                remote = await chain.register(f"PG-{tag}@Example.com", PASSWORD)
                with pytest.raises(EmailExists):
                    await chain.register(f"pg-{tag}@example.com", PASSWORD)
                gotrue.mode = "down"
                local = await chain.register(
                    f"pg-local-{tag}@example.com", ("violet tractor é minus " * 60)[:999] + "z"
                )
                assert (
                    await chain.login(
                        f"PG-LOCAL-{tag}@example.com", ("violet tractor é minus " * 60)[:999] + "z"
                    )
                ).user.id == (local.user.id)
                assert (await chain.authenticate(remote.access_token)).user_id == remote.user.id
                fallback = await chain.login(f"pg-{tag}@example.com", PASSWORD)
                rotated = await chain.refresh(fallback.refresh_token)
                # Within the reuse interval: the same successor, on PostgreSQL's row locks too.
                again = await chain.refresh(fallback.refresh_token)
                assert again.refresh_token == rotated.refresh_token
                await chain.refresh(rotated.refresh_token)
                principal = await chain.authenticate(local.access_token)
                await chain.logout(principal, local.refresh_token)
                with pytest.raises(InvalidToken):
                    await chain.refresh(local.refresh_token)
    finally:
        await database.dispose()


def _token_from(issuer: str) -> str:
    import jwt

    return jwt.encode({"iss": issuer, "sub": "x", "exp": 4_000_000_000}, "k" * 32)
