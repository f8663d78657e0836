"""Fixtures for the auth tests: a migrated SQLite database, fast hashing, a fake GoTrue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from auth_helpers import JWT_SECRET, fast_hasher
from fake_gotrue import FakeGoTrue

from chitram_core.auth.local import LocalProvider
from chitram_core.auth.passwords import Passwords
from chitram_core.auth.supabase import SupabaseProvider
from chitram_core.db import Database
from chitram_core.settings import Settings


@pytest.fixture(scope="session")
def gotrue_server() -> Iterator[FakeGoTrue]:
    fake = FakeGoTrue()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def gotrue(gotrue_server: FakeGoTrue) -> FakeGoTrue:
    gotrue_server.reset()
    return gotrue_server


@pytest.fixture
def settings(gotrue: FakeGoTrue) -> Settings:
    return Settings(
        env="test",
        jwt_secret=JWT_SECRET,
        auth_providers=("supabase", "local"),
        supabase_url=gotrue.url,
        supabase_key="anon-key",
        supabase_jwt_secret=gotrue.jwt_secret,
        auth_timeout=1.0,
        breaker_threshold=3,
        breaker_cooldown=30.0,
    )


@pytest.fixture
async def database(tmp_path: object) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/auth.db")
    await db.upgrade()
    yield db
    await db.dispose()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as client:
        yield client


@pytest.fixture
async def local(settings: Settings, database: Database) -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(settings, hasher=fast_hasher())
    await provider.start(database)
    yield provider
    await provider.close()


@pytest.fixture
async def supabase(
    settings: Settings, database: Database, http_client: httpx.AsyncClient
) -> AsyncIterator[SupabaseProvider]:
    provider = SupabaseProvider(
        settings, http_client=http_client, passwords=Passwords(fast_hasher())
    )
    await provider.start(database)
    yield provider
    await provider.close()
