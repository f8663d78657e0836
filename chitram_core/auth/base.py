"""What an auth provider is: the protocol every ``chitram.auth`` plugin implements.

A provider answers definitely (a result, or any :class:`~chitram_core.errors.ChitramError`) or
says it is unavailable (:class:`~chitram_core.errors.ProviderUnavailable`: timeout, connection
error, 5xx). Only the second moves the chain on to the next provider.

A plugin's entry point is a factory ``(settings) -> AuthProvider``; the chain then calls
``await provider.start(database)`` once before use and ``await provider.close()`` at the end.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from chitram_core.db import Database
from chitram_core.models import Check, Principal, Session


@runtime_checkable
class AuthProvider(Protocol):
    """An identity backend: the ``chitram.auth`` plugin protocol.

    Providers form an ordered failover chain (``CHITRAM_AUTH_PROVIDERS``); each method raises
    the :mod:`chitram_core.errors` named in its docstring, and ``ProviderUnavailable`` when its
    backend cannot answer, so the chain can try the next one.
    """

    name: str
    """The plugin name; user rows record it as their owning ``provider``."""

    timeout: float | None
    """How long the chain lets one call run before counting it as unavailable."""

    async def start(self, database: Database) -> None:
        """Bind to the user database and acquire resources (HTTP clients, key sets)."""

    async def close(self) -> None:
        """Release what :meth:`start` acquired."""

    async def register(self, email: str, password: str) -> Session:
        """Create a user and log them in. EmailExists, InvalidEmail, WeakPassword."""

    async def login(self, email: str, password: str) -> Session:
        """InvalidCredentials (unknown email and wrong password alike), UserInactive."""

    async def authenticate(self, token: str) -> Principal:
        """The caller behind an access token. InvalidToken, TokenExpired, UserInactive."""

    async def vouch(self, token: str) -> Principal | None:
        """Verify a token without any network call, for when its issuer is down.

        None when this provider cannot vouch for the token offline. Raises InvalidToken /
        TokenExpired / UserInactive when it can tell the token is bad.
        """

    async def refresh(self, refresh_token: str) -> Session:
        """A new session for a refresh token; the old refresh token stops working."""

    async def logout(
        self,
        principal: Principal,
        refresh_token: str | None = None,
        *,
        access_token: str | None = None,
    ) -> None:
        """Revoke the session: the refresh token (and its family) stops working. Idempotent."""

    async def request_password_reset(self, email: str) -> None:
        """Start a reset; the same answer whether or not the email exists."""

    def issued(self, token: str) -> bool:
        """Cheap and unverified: does this access or refresh token say it is mine?"""

    async def health(self) -> Check:
        """Whether the provider (and any service behind it) can answer now."""
