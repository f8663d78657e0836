"""The local provider: argon2id hashes, HS256 tokens, rotating refresh-token families."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator

import anyio
import jwt
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from auth_helpers import JWT_SECRET, PASSWORD, fast_hasher

from chitram_core.auth.local import LocalProvider
from chitram_core.db import Database
from chitram_core.db.tables import users
from chitram_core.errors import (
    EmailExists,
    InvalidCredentials,
    InvalidToken,
    TokenExpired,
    UserInactive,
)
from chitram_core.settings import Settings

pytestmark = pytest.mark.anyio


async def deactivate(database: Database, user_id: str) -> None:
    async with database.transaction() as conn:
        await conn.execute(sa.update(users).where(users.c.id == user_id).values(is_active=False))


async def test_emails_are_unique_whatever_their_case(local: LocalProvider) -> None:
    session = await local.register("Ada.Lovelace@Example.COM", PASSWORD)
    assert session.user.email == "Ada.Lovelace@example.com"  # the domain is case-insensitive
    again = await local.login("ada.lovelace@example.com", PASSWORD)
    assert again.user.id == session.user.id
    with pytest.raises(EmailExists):
        await local.register("ADA.LOVELACE@EXAMPLE.COM", PASSWORD)


async def test_passwords_of_1000_and_1024_characters_work(local: LocalProvider) -> None:
    for length in (1000, 1024):
        password = ("violet tractor é minus " * 60)[: length - 1] + "z"
        await local.register(f"long{length}@example.com", password)
        await local.login(f"long{length}@example.com", password)


async def test_access_tokens_carry_exp_iat_iss_sub_jti(local: LocalProvider) -> None:
    session = await local.register("claims@example.com", PASSWORD)
    claims = jwt.decode(session.access_token, JWT_SECRET, algorithms=["HS256"])
    assert {"exp", "iat", "iss", "sub", "jti"} <= set(claims)
    assert claims["iss"] == "chitram" and claims["sub"] == session.user.id
    assert claims["exp"] - claims["iat"] == local.settings.access_token_ttl == session.expires_in


async def test_the_access_token_lifetime_is_configurable(database: Database) -> None:
    provider = LocalProvider(
        Settings(jwt_secret=JWT_SECRET, access_token_ttl=60), hasher=fast_hasher()
    )
    await provider.start(database)
    session = await provider.register("short-lived@example.com", PASSWORD)
    claims = jwt.decode(session.access_token, JWT_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60 == session.expires_in


async def test_an_expired_access_token_is_token_expired(database: Database) -> None:
    past = LocalProvider(
        Settings(jwt_secret=JWT_SECRET), hasher=fast_hasher(), clock=lambda: time.time() - 7200
    )
    await past.start(database)
    session = await past.register("expired@example.com", PASSWORD)
    with pytest.raises(TokenExpired):
        await past.authenticate(session.access_token)


async def test_an_expired_refresh_token_is_token_expired(database: Database) -> None:
    settings = Settings(jwt_secret=JWT_SECRET, refresh_token_ttl=60)
    past = LocalProvider(settings, hasher=fast_hasher(), clock=lambda: time.time() - 120)
    await past.start(database)
    session = await past.register("stale@example.com", PASSWORD)
    now = LocalProvider(settings, hasher=fast_hasher())
    await now.start(database)
    with pytest.raises(TokenExpired):
        await now.refresh(session.refresh_token)


async def test_a_token_signed_with_another_secret_is_invalid(local: LocalProvider) -> None:
    session = await local.register("forged@example.com", PASSWORD)
    claims = jwt.decode(session.access_token, JWT_SECRET, algorithms=["HS256"])
    forged = jwt.encode(claims, "another-secret-0123456789abcdef0123456789", algorithm="HS256")
    with pytest.raises(InvalidToken):
        await local.authenticate(forged)
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(InvalidToken):
        await local.authenticate(unsigned)


class Clock:
    """A settable wall clock for the provider."""

    def __init__(self) -> None:
        self.now = time.time() - 60  # tokens it stamps are never from the future

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clocked(
    settings: Settings, database: Database
) -> AsyncIterator[tuple[LocalProvider, Clock]]:
    clock = Clock()
    provider = LocalProvider(settings, hasher=fast_hasher(), clock=clock)
    await provider.start(database)
    yield provider, clock
    await provider.close()


async def test_reusing_a_rotated_refresh_token_revokes_the_family_and_its_access_tokens(
    clocked: tuple[LocalProvider, Clock],
) -> None:
    local, clock = clocked
    first = await local.register("stolen@example.com", PASSWORD)
    second = await local.refresh(first.refresh_token)
    third = await local.refresh(second.refresh_token)
    clock.now += local.settings.refresh_reuse_interval + 1
    with pytest.raises(InvalidToken):
        await local.refresh(first.refresh_token)  # the thief (or the victim) replays it
    with pytest.raises(InvalidToken):
        await local.refresh(third.refresh_token)
    with pytest.raises(InvalidToken):
        await local.authenticate(third.access_token)
    # Other sessions of the same user are untouched.
    other = await local.login("stolen@example.com", PASSWORD)
    await local.authenticate(other.access_token)
    await local.refresh(other.refresh_token)


async def test_logout_revokes_the_refresh_token_and_the_session(local: LocalProvider) -> None:
    session = await local.register("bye@example.com", PASSWORD)
    principal = await local.authenticate(session.access_token)
    await local.logout(principal, session.refresh_token)
    with pytest.raises(InvalidToken):
        await local.refresh(session.refresh_token)
    with pytest.raises(InvalidToken):
        await local.authenticate(session.access_token)


async def test_logout_without_a_refresh_token_revokes_the_tokens_session(
    local: LocalProvider,
) -> None:
    session = await local.register("bye2@example.com", PASSWORD)
    principal = await local.authenticate(session.access_token)
    await local.logout(principal)
    with pytest.raises(InvalidToken):
        await local.refresh(session.refresh_token)


async def test_logout_cannot_revoke_someone_elses_refresh_token(local: LocalProvider) -> None:
    mine = await local.register("me@example.com", PASSWORD)
    theirs = await local.register("them@example.com", PASSWORD)
    principal = await local.authenticate(mine.access_token)
    await local.logout(principal, theirs.refresh_token)
    await local.refresh(theirs.refresh_token)


async def test_inactive_users_are_refused_everywhere(
    local: LocalProvider, database: Database
) -> None:
    session = await local.register("inactive@example.com", PASSWORD)
    await deactivate(database, session.user.id)
    with pytest.raises(UserInactive):
        await local.login("inactive@example.com", PASSWORD)
    with pytest.raises(UserInactive):
        await local.authenticate(session.access_token)
    with pytest.raises(UserInactive):
        await local.refresh(session.refresh_token)


async def test_an_inactive_user_with_a_wrong_password_learns_nothing(
    local: LocalProvider, database: Database
) -> None:
    session = await local.register("quiet@example.com", PASSWORD)
    await deactivate(database, session.user.id)
    with pytest.raises(InvalidCredentials):
        await local.login("quiet@example.com", "wrong password")


class CountingHasher(PasswordHasher):
    """Records every argon2 call and the thread it ran on."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verifies = 0
        self.threads: set[str] = set()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verifies += 1
        self.threads.add(threading.current_thread().name)
        return super().verify(hash, password)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.threads.add(threading.current_thread().name)
        return super().hash(password, salt=salt)


@pytest.fixture
async def counted(database: Database) -> AsyncIterator[tuple[LocalProvider, CountingHasher]]:
    hasher = CountingHasher()
    provider = LocalProvider(Settings(jwt_secret=JWT_SECRET), hasher=hasher)
    await provider.start(database)
    yield provider, hasher


async def test_unknown_emails_cost_one_hash_verification_like_wrong_passwords(
    counted: tuple[LocalProvider, CountingHasher],
) -> None:
    provider, hasher = counted
    await provider.register("known@example.com", PASSWORD)
    before = hasher.verifies
    with pytest.raises(InvalidCredentials):
        await provider.login("known@example.com", "wrong password")
    wrong_password = hasher.verifies - before
    before = hasher.verifies
    with pytest.raises(InvalidCredentials):
        await provider.login("nobody@example.com", "wrong password")
    assert hasher.verifies - before == wrong_password == 1


async def test_hashing_runs_in_worker_threads(
    counted: tuple[LocalProvider, CountingHasher],
) -> None:
    provider, hasher = counted
    await provider.register("threads@example.com", PASSWORD)
    await provider.login("threads@example.com", PASSWORD)
    assert hasher.threads and threading.main_thread().name not in hasher.threads


async def test_unknown_email_and_wrong_password_take_about_the_same_time(
    database: Database,
) -> None:
    provider = LocalProvider(Settings(jwt_secret=JWT_SECRET))  # real argon2 costs
    await provider.start(database)
    await provider.register("timing@example.com", PASSWORD)

    async def duration(email: str) -> float:
        started = time.perf_counter()
        with pytest.raises(InvalidCredentials):
            await provider.login(email, "wrong password")
        return time.perf_counter() - started

    known = sorted([await duration("timing@example.com") for _ in range(5)])[2]
    unknown = sorted([await duration("nobody@example.com") for _ in range(5)])[2]
    assert 0.5 < unknown / known < 2.0


async def test_concurrent_refreshes_of_one_token_all_get_the_same_successor(
    local: LocalProvider,
) -> None:
    """Three browser requests renewing one session at once: one rotation, one successor for
    all, and the session lives on (before the reuse interval they signed the user out)."""
    session = await local.register("race@example.com", PASSWORD)
    successors: list[str] = []

    async def attempt() -> None:
        renewed = await local.refresh(session.refresh_token)
        await local.authenticate(renewed.access_token)
        successors.append(renewed.refresh_token)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(attempt)
    assert len(successors) == 4 and len(set(successors)) == 1
    assert successors[0] != session.refresh_token
    await local.refresh(successors[0])


async def test_reuse_within_the_interval_gets_the_same_successor_and_revokes_nothing(
    clocked: tuple[LocalProvider, Clock],
) -> None:
    local, clock = clocked
    first = await local.register("reuse@example.com", PASSWORD)
    second = await local.refresh(first.refresh_token)
    clock.now += local.settings.refresh_reuse_interval - 1
    again = await local.refresh(first.refresh_token)
    assert again.refresh_token == second.refresh_token
    await local.authenticate(again.access_token)
    await local.authenticate(second.access_token)
    third = await local.refresh(second.refresh_token)
    await local.authenticate(third.access_token)


async def test_reuse_after_the_interval_revokes_the_family(
    clocked: tuple[LocalProvider, Clock],
) -> None:
    local, clock = clocked
    first = await local.register("late@example.com", PASSWORD)
    second = await local.refresh(first.refresh_token)
    clock.now += local.settings.refresh_reuse_interval + 0.5
    with pytest.raises(InvalidToken):
        await local.refresh(first.refresh_token)
    with pytest.raises(InvalidToken):
        await local.refresh(second.refresh_token)
    with pytest.raises(InvalidToken):
        await local.authenticate(second.access_token)


async def test_a_reuse_after_logout_is_refused(local: LocalProvider) -> None:
    first = await local.register("gone@example.com", PASSWORD)
    second = await local.refresh(first.refresh_token)
    principal = await local.authenticate(second.access_token)
    await local.logout(principal, second.refresh_token)
    with pytest.raises(InvalidToken):
        await local.refresh(first.refresh_token)
