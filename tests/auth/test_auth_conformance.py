"""Both built-in providers pass the auth-provider conformance suite shipped to plugin authors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from auth_helpers import fast_hasher

from chitram_core.auth.local import LocalProvider
from chitram_core.auth.supabase import SupabaseProvider
from chitram_core.db import Database
from chitram_core.settings import Settings
from chitram_core.testing.auth_conformance import AuthProviderConformance


class TestLocalProviderConformance(AuthProviderConformance):
    @pytest.fixture
    def auth_provider(self, local: LocalProvider) -> LocalProvider:
        return local


class TestSupabaseProviderConformance(AuthProviderConformance):
    @pytest.fixture
    def auth_provider(self, supabase: SupabaseProvider) -> SupabaseProvider:
        return supabase


@pytest.mark.postgres
class TestLocalProviderConformanceOnPostgres(AuthProviderConformance):
    @pytest.fixture
    async def auth_provider(
        self, postgres_session_url: str, settings: Settings
    ) -> AsyncIterator[LocalProvider]:
        database = Database(postgres_session_url)
        provider = LocalProvider(settings, hasher=fast_hasher())
        await provider.start(database)
        yield provider
        await provider.close()
        await database.dispose()
