"""The Supabase provider: the real supabase-py SDK against a fake GoTrue on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import attrs
import httpx
import pytest
import sqlalchemy as sa
from auth_helpers import PASSWORD, fast_hasher
from fake_gotrue import FakeGoTrue
from netkit import free_port

from chitram_core.auth import users as users_repo
from chitram_core.auth.local import LocalProvider
from chitram_core.auth.passwords import Passwords
from chitram_core.auth.supabase import SupabaseProvider
from chitram_core.db import Database
from chitram_core.db.tables import users
from chitram_core.errors import (
    EmailExists,
    InvalidCredentials,
    InvalidToken,
    ProviderUnavailable,
    TokenExpired,
    UserInactive,
    WeakPassword,
)
from chitram_core.settings import Settings

pytestmark = pytest.mark.anyio


async def user_row(database: Database, email: str) -> sa.Row[tuple[object, ...]]:
    async with database.connect() as conn:
        row = (
            await conn.execute(sa.select(users).where(users.c.email_normalized == email.lower()))
        ).first()
    assert row is not None
    return row


Make = Callable[..., Awaitable[SupabaseProvider]]


@pytest.fixture
async def make(
    settings: Settings, database: Database, http_client: httpx.AsyncClient
) -> AsyncIterator[Make]:
    """Build a started provider with some settings changed; closed after the test."""
    started: list[SupabaseProvider] = []

    async def build(**changes: Any) -> SupabaseProvider:
        provider = SupabaseProvider(
            attrs.evolve(settings, **changes),
            http_client=http_client,
            passwords=Passwords(fast_hasher()),
        )
        await provider.start(database)
        started.append(provider)
        return provider

    yield build
    for provider in started:
        await provider.close()


# Sign-up, login, sync-on-auth -----------------------------------------------------------------


async def test_sign_up_creates_a_linked_local_user(
    supabase: SupabaseProvider, gotrue: FakeGoTrue, database: Database
) -> None:
    session = await supabase.register("Grace@Example.com", PASSWORD)
    remote = gotrue.users["grace@example.com"]
    row = await user_row(database, "grace@example.com")
    assert session.user.id == row.id
    assert row.supabase_id == remote["id"] and row.provider == "supabase"
    assert row.password_hash is not None  # saved for the local fallback
    assert ("POST", "/auth/v1/signup") in [(m, p) for m, p, _ in gotrue.requests]


async def test_login_syncs_a_user_created_in_supabase(
    supabase: SupabaseProvider, gotrue: FakeGoTrue, database: Database
) -> None:
    remote = gotrue.add_user("made-elsewhere@example.com", PASSWORD)
    session = await supabase.login("MADE-ELSEWHERE@example.com", PASSWORD)
    row = await user_row(database, "made-elsewhere@example.com")
    assert session.user.id == row.id and row.supabase_id == remote["id"]


async def test_a_confirmed_email_alone_never_takes_over_a_local_account(
    supabase: SupabaseProvider, local: LocalProvider, gotrue: FakeGoTrue, database: Database
) -> None:
    """A project that auto-confirms emails would otherwise hand any local account to whoever
    signs up at Supabase with its address."""
    mine = await local.register("taken@example.com", "local password 1")
    gotrue.add_user("taken@example.com", PASSWORD, confirmed=True)
    with pytest.raises(EmailExists):
        await supabase.login("taken@example.com", PASSWORD)
    row = await user_row(database, "taken@example.com")
    assert row.supabase_id is None and row.provider == "local"
    await local.refresh(mine.refresh_token)  # the owner's session is untouched


async def test_the_local_password_proves_the_account_links_it_and_ends_local_sessions(
    supabase: SupabaseProvider, local: LocalProvider, gotrue: FakeGoTrue, database: Database
) -> None:
    mine = await local.register("linked@example.com", PASSWORD)
    gotrue.add_user("linked@example.com", PASSWORD, confirmed=True)
    session = await supabase.login("linked@example.com", PASSWORD)
    assert session.user.id == mine.user.id
    row = await user_row(database, "linked@example.com")
    assert row.supabase_id == gotrue.users["linked@example.com"]["id"]
    with pytest.raises(InvalidToken):
        await local.refresh(mine.refresh_token)
    with pytest.raises(InvalidToken):
        await local.authenticate(mine.access_token)


async def test_a_local_account_without_a_password_is_linked_on_a_confirmed_sign_in(
    supabase: SupabaseProvider, gotrue: FakeGoTrue, database: Database
) -> None:
    async with database.transaction() as conn:
        row = await users_repo.create(
            conn,
            email="nopass@example.com",
            email_normalized="nopass@example.com",
            provider="local",
        )
    gotrue.add_user("nopass@example.com", PASSWORD, confirmed=True)
    session = await supabase.login("nopass@example.com", PASSWORD)
    assert session.user.id == row.id


async def test_an_unconfirmed_supabase_email_never_takes_over_a_local_account(
    supabase: SupabaseProvider, local: LocalProvider, gotrue: FakeGoTrue, database: Database
) -> None:
    await local.register("victim@example.com", "local password 1")
    gotrue.add_user("victim@example.com", PASSWORD, confirmed=False)
    gotrue.allow_unconfirmed_login = True
    with pytest.raises(EmailExists):
        await supabase.login("victim@example.com", PASSWORD)
    row = await user_row(database, "victim@example.com")
    assert row.supabase_id is None and row.provider == "local"


async def test_sign_up_needing_confirmation_creates_the_user_but_no_session(
    supabase: SupabaseProvider, gotrue: FakeGoTrue, database: Database
) -> None:
    gotrue.autoconfirm = False
    with pytest.raises(UserInactive) as caught:
        await supabase.register("confirm-me@example.com", PASSWORD)
    assert caught.value.details == {"confirmation_required": True}
    await user_row(database, "confirm-me@example.com")
    with pytest.raises(UserInactive):
        await supabase.login("confirm-me@example.com", PASSWORD)
    gotrue.confirm("confirm-me@example.com")
    await supabase.login("confirm-me@example.com", PASSWORD)


# GoTrue's definite answers --------------------------------------------------------------------


async def test_gotrue_400_invalid_credentials(
    supabase: SupabaseProvider, gotrue: FakeGoTrue
) -> None:
    gotrue.add_user("wrong@example.com", PASSWORD)
    with pytest.raises(InvalidCredentials):
        await supabase.login("wrong@example.com", "not the password")


async def test_gotrue_422_user_already_exists(
    supabase: SupabaseProvider, gotrue: FakeGoTrue
) -> None:
    gotrue.add_user("taken@example.com", PASSWORD)  # known to Supabase, not yet synced here
    with pytest.raises(EmailExists):
        await supabase.register("taken@example.com", PASSWORD)


async def test_gotrue_422_weak_password(supabase: SupabaseProvider, gotrue: FakeGoTrue) -> None:
    gotrue.min_password = 12
    with pytest.raises(WeakPassword):
        await supabase.register("weak@example.com", "only10char")


async def test_gotrue_403_bad_jwt_is_invalid_token(
    make: Make, gotrue: FakeGoTrue, database: Database
) -> None:
    provider = await make(supabase_jwt_secret=None)
    user = gotrue.add_user("forged@example.com", PASSWORD)
    gotrue.jwt_secret, real = "some-other-secret-0123456789abcdef", gotrue.jwt_secret
    forged = gotrue.access_token(user, "s1")
    gotrue.jwt_secret = real
    with pytest.raises(InvalidToken):
        await provider.authenticate(forged)
    assert "/auth/v1/user" in gotrue.paths()


async def test_gotrue_403_banned_user_is_inactive(
    supabase: SupabaseProvider, gotrue: FakeGoTrue
) -> None:
    gotrue.add_user("banned@example.com", PASSWORD)["banned"] = True
    with pytest.raises(UserInactive):
        await supabase.login("banned@example.com", PASSWORD)


async def test_recover_sends_the_reset_request(
    supabase: SupabaseProvider, gotrue: FakeGoTrue
) -> None:
    await supabase.request_password_reset("anyone@example.com")
    assert "/auth/v1/recover" in gotrue.paths()


# Unavailability -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["down", "broken", "rate_limited"])
async def test_5xx_and_429_are_unavailability(
    supabase: SupabaseProvider, gotrue: FakeGoTrue, mode: str
) -> None:
    gotrue.add_user("someone@example.com", PASSWORD)
    gotrue.mode = mode
    with pytest.raises(ProviderUnavailable):
        await supabase.login("someone@example.com", PASSWORD)
    with pytest.raises(ProviderUnavailable):
        await supabase.register("new@example.com", PASSWORD)
    with pytest.raises(ProviderUnavailable):
        await supabase.refresh("some-refresh-token")
    with pytest.raises(ProviderUnavailable):
        await supabase.request_password_reset("someone@example.com")


async def test_a_slow_gotrue_times_out_as_unavailable(
    supabase: SupabaseProvider, gotrue: FakeGoTrue
) -> None:
    gotrue.mode, gotrue.delay = "slow", 3.0
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        await supabase.login("slow@example.com", PASSWORD)
    assert time.monotonic() - started < 2.5  # auth_timeout is 1 s


async def test_connection_refused_is_unavailable(make: Make) -> None:
    provider = await make(supabase_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnavailable):
        await provider.login("a@example.com", PASSWORD)
    assert (await provider.health()).status == "unhealthy"


# Tokens ---------------------------------------------------------------------------------------


async def test_tokens_are_verified_locally_with_the_project_secret(
    supabase: SupabaseProvider, gotrue: FakeGoTrue
) -> None:
    session = await supabase.register("local-check@example.com", PASSWORD)
    gotrue.requests.clear()
    principal = await supabase.authenticate(session.access_token)
    assert principal.user_id == session.user.id and principal.provider == "supabase"
    assert gotrue.requests == []  # no network call


async def test_an_expired_supabase_token_is_token_expired(
    supabase: SupabaseProvider, gotrue: FakeGoTrue
) -> None:
    session = await supabase.register("old@example.com", PASSWORD)
    user = gotrue.users["old@example.com"]
    expired = gotrue.access_token(user, "s1", exp=int(time.time()) - 60)
    with pytest.raises(TokenExpired):
        await supabase.authenticate(expired)
    assert session.user.email == "old@example.com"


async def test_without_a_secret_tokens_are_checked_by_gotrue(
    make: Make, gotrue: FakeGoTrue, database: Database
) -> None:
    provider = await make(supabase_jwt_secret=None)
    session = await provider.register("online@example.com", PASSWORD)
    principal = await provider.authenticate(session.access_token)
    assert principal.user_id == session.user.id
    assert "/auth/v1/user" in gotrue.paths()
    assert await provider.vouch(session.access_token) is None  # cannot vouch offline


async def test_jwks_verification_survives_an_outage(make: Make, gotrue: FakeGoTrue) -> None:
    gotrue.algorithm = "ES256"
    provider = await make(
        supabase_jwt_secret=None, supabase_jwks_url=f"{gotrue.issuer}/.well-known/jwks.json"
    )
    session = await provider.register("jwks@example.com", PASSWORD)
    gotrue.mode = "down"
    principal = await provider.authenticate(session.access_token)
    assert principal.user_id == session.user.id
    vouched = await provider.vouch(session.access_token)
    assert vouched is not None and vouched.user_id == session.user.id


async def test_refresh_rotates_through_gotrue(
    supabase: SupabaseProvider, gotrue: FakeGoTrue
) -> None:
    first = await supabase.register("rotate@example.com", PASSWORD)
    second = await supabase.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    with pytest.raises(InvalidToken):
        await supabase.refresh(first.refresh_token)


# No state shared between users ----------------------------------------------------------------


async def test_no_client_state_is_shared_between_users(
    make: Make, gotrue: FakeGoTrue, database: Database
) -> None:
    provider = await make(supabase_jwt_secret=None)
    emails = [f"user{i}@example.com" for i in range(6)]
    for email in emails:
        gotrue.add_user(email, PASSWORD)
    sessions = {}

    async def login(email: str) -> None:
        sessions[email] = await provider.login(email, PASSWORD)

    async with anyio.create_task_group() as tg:
        for email in emails:
            tg.start_soon(login, email)
    gotrue.requests.clear()

    async def check(email: str) -> None:
        principal = await provider.authenticate(sessions[email].access_token)
        assert principal.email == email

    async with anyio.create_task_group() as tg:
        for email in emails:
            tg.start_soon(check, email)
    # Every /user request carried the token of the user it was made for, and a later login
    # still goes out with the project key, not someone's session.
    assert sorted(a for _m, p, a in gotrue.requests if p == "/auth/v1/user") == sorted(
        f"Bearer {sessions[e].access_token}" for e in emails
    )
    gotrue.requests.clear()
    await provider.login(emails[0], PASSWORD)
    assert [a for _m, _p, a in gotrue.requests] == ["Bearer anon-key"]


# Password fallback ----------------------------------------------------------------------------


async def test_the_password_saved_at_a_supabase_login_lets_local_log_the_user_in(
    supabase: SupabaseProvider, local: LocalProvider, gotrue: FakeGoTrue
) -> None:
    gotrue.add_user("fallback@example.com", PASSWORD)
    remote = await supabase.login("fallback@example.com", PASSWORD)
    session = await local.login("fallback@example.com", PASSWORD)
    assert session.user.id == remote.user.id
    with pytest.raises(InvalidCredentials):
        await local.login("fallback@example.com", "wrong password")


async def test_the_fallback_can_be_turned_off(
    make: Make, gotrue: FakeGoTrue, database: Database
) -> None:
    provider = await make(supabase_password_fallback=False)
    local = LocalProvider(provider.settings, hasher=fast_hasher())
    await local.start(database)
    gotrue.add_user("nofallback@example.com", PASSWORD)
    await provider.login("nofallback@example.com", PASSWORD)
    row = await user_row(database, "nofallback@example.com")
    assert row.password_hash is None
    with pytest.raises(InvalidCredentials):
        await local.login("nofallback@example.com", PASSWORD)
