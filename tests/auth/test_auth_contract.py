"""Both built-in providers pass the auth-provider contract suite shipped to plugin authors."""

from __future__ import annotations

import pytest

from chitram_core.auth.local import LocalProvider
from chitram_core.auth.supabase import SupabaseProvider
from chitram_core.testing.auth_contract import AuthProviderContract


class TestLocalProviderContract(AuthProviderContract):
    @pytest.fixture
    def auth_provider(self, local: LocalProvider) -> LocalProvider:
        return local


class TestSupabaseProviderContract(AuthProviderContract):
    @pytest.fixture
    def auth_provider(self, supabase: SupabaseProvider) -> SupabaseProvider:
        return supabase
