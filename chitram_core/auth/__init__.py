"""Authentication: the provider protocol, the built-in providers and the failover chain.

``AuthChain`` is what ``chitram.auth`` is in the SDK. The Supabase provider is imported only
when configured (it needs the ``supabase`` extra).
"""

from chitram_core.auth.base import AuthProvider
from chitram_core.auth.breaker import Breaker, State
from chitram_core.auth.chain import AuthChain

__all__ = ["AuthChain", "AuthProvider", "Breaker", "State"]
