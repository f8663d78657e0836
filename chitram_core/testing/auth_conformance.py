"""A conformance suite every auth provider passes; plugin authors run it against their own.

Subclass :class:`AuthProviderConformance` in a test module and provide an async ``auth_provider``
fixture that yields a started provider (``await provider.start(database)``) backed by a migrated
database::

    from chitram_core.testing.auth_conformance import AuthProviderConformance

    class TestMyProvider(AuthProviderConformance):
        @pytest.fixture
        async def auth_provider(self, tmp_path):
            db = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
            await db.upgrade()
            provider = MyProvider(Settings(...))
            await provider.start(db)
            yield provider
            await provider.close()
            await db.dispose()

The tests need the ``anyio`` pytest plugin (installed with anyio) and an ``anyio_backend``
fixture if the default (asyncio and trio) does not suit.
"""

from __future__ import annotations

import uuid

import pytest

from chitram_core.auth.base import AuthProvider
from chitram_core.errors import (
    EmailExists,
    InvalidCredentials,
    InvalidEmail,
    InvalidToken,
    TokenExpired,
    Unauthorized,
    WeakPassword,
)

PASSWORD = "correct horse battery staple"


def unique_email(domain: str = "example.com") -> str:
    return f"conformance-{uuid.uuid4().hex[:12]}@{domain}"


@pytest.mark.anyio
class AuthProviderConformance:
    """The behaviour Chitram relies on from any provider in the chain."""

    async def test_register_returns_a_session_for_the_new_user(
        self, auth_provider: AuthProvider
    ) -> None:
        email = unique_email()
        session = await auth_provider.register(email, PASSWORD)
        assert session.user.email.lower() == email
        assert session.user.is_active
        assert session.access_token and session.refresh_token
        assert session.expires_in > 0
        assert session.token_type == "bearer"

    async def test_login_with_the_right_password(self, auth_provider: AuthProvider) -> None:
        email = unique_email()
        registered = await auth_provider.register(email, PASSWORD)
        session = await auth_provider.login(email, PASSWORD)
        assert session.user.id == registered.user.id

    async def test_login_ignores_email_case(self, auth_provider: AuthProvider) -> None:
        email = unique_email()
        registered = await auth_provider.register(email, PASSWORD)
        session = await auth_provider.login(email.upper(), PASSWORD)
        assert session.user.id == registered.user.id

    async def test_wrong_password_is_invalid_credentials(self, auth_provider: AuthProvider) -> None:
        email = unique_email()
        await auth_provider.register(email, PASSWORD)
        with pytest.raises(InvalidCredentials):
            await auth_provider.login(email, PASSWORD + "!")

    async def test_unknown_email_is_invalid_credentials(self, auth_provider: AuthProvider) -> None:
        with pytest.raises(InvalidCredentials):
            await auth_provider.login(unique_email(), PASSWORD)

    async def test_duplicate_email_in_any_case_is_refused(
        self, auth_provider: AuthProvider
    ) -> None:
        email = unique_email()
        await auth_provider.register(email, PASSWORD)
        with pytest.raises(EmailExists):
            await auth_provider.register(email, PASSWORD)
        with pytest.raises(EmailExists):
            await auth_provider.register(email.upper(), PASSWORD)

    @pytest.mark.parametrize("password", ["", "short", "x" * 7, "x" * 1025])
    async def test_password_outside_8_to_1024_characters_is_weak(
        self, auth_provider: AuthProvider, password: str
    ) -> None:
        with pytest.raises(WeakPassword):
            await auth_provider.register(unique_email(), password)

    @pytest.mark.parametrize("email", ["", "no-at-sign", "two@@example.com", "a b@example.com"])
    async def test_malformed_email_is_refused(
        self, auth_provider: AuthProvider, email: str
    ) -> None:
        with pytest.raises(InvalidEmail):
            await auth_provider.register(email, PASSWORD)

    async def test_a_1000_character_password_works(self, auth_provider: AuthProvider) -> None:
        email = unique_email()
        password = "Ω" + ("violet tractor minus " * 60)[:997] + "!"
        await auth_provider.register(email, password)
        await auth_provider.login(email, password)
        with pytest.raises(InvalidCredentials):
            await auth_provider.login(email, password[:-1] + "?")

    async def test_authenticate_returns_the_user_behind_the_token(
        self, auth_provider: AuthProvider
    ) -> None:
        session = await auth_provider.register(unique_email(), PASSWORD)
        principal = await auth_provider.authenticate(session.access_token)
        assert principal.user_id == session.user.id
        assert principal.email == session.user.email
        assert principal.provider == auth_provider.name

    async def test_the_provider_recognises_its_own_tokens(
        self, auth_provider: AuthProvider
    ) -> None:
        session = await auth_provider.register(unique_email(), PASSWORD)
        assert auth_provider.issued(session.access_token)
        assert not auth_provider.issued("not-a-token")

    async def test_a_garbage_token_is_refused(self, auth_provider: AuthProvider) -> None:
        with pytest.raises((InvalidToken, TokenExpired)):
            await auth_provider.authenticate("not.a.token")

    async def test_a_tampered_token_is_refused(self, auth_provider: AuthProvider) -> None:
        session = await auth_provider.register(unique_email(), PASSWORD)
        head, body, signature = session.access_token.split(".")
        tampered = f"{head}.{body}.{signature[:-4]}AAAA"
        with pytest.raises(Unauthorized):
            await auth_provider.authenticate(tampered)

    async def test_refresh_rotates_the_refresh_token(self, auth_provider: AuthProvider) -> None:
        first = await auth_provider.register(unique_email(), PASSWORD)
        second = await auth_provider.refresh(first.refresh_token)
        assert second.user.id == first.user.id
        assert second.refresh_token != first.refresh_token
        principal = await auth_provider.authenticate(second.access_token)
        assert principal.user_id == first.user.id

    async def test_a_rotated_refresh_token_never_starts_a_second_session(
        self, auth_provider: AuthProvider
    ) -> None:
        """Presented again, a rotated token is refused, or (within a reuse interval, as GoTrue's
        ``REFRESH_TOKEN_REUSE_INTERVAL``) answered with the same successor: never a new one."""
        first = await auth_provider.register(unique_email(), PASSWORD)
        second = await auth_provider.refresh(first.refresh_token)
        try:
            again = await auth_provider.refresh(first.refresh_token)
        except InvalidToken:
            return
        assert again.refresh_token == second.refresh_token
        assert again.user.id == second.user.id

    async def test_a_refused_reuse_revokes_the_whole_family(
        self, auth_provider: AuthProvider
    ) -> None:
        first = await auth_provider.register(unique_email(), PASSWORD)
        second = await auth_provider.refresh(first.refresh_token)
        try:
            await auth_provider.refresh(first.refresh_token)
        except InvalidToken:
            with pytest.raises(InvalidToken):
                await auth_provider.refresh(second.refresh_token)
        else:  # inside the reuse interval: the family lives on
            await auth_provider.refresh(second.refresh_token)

    async def test_an_unknown_refresh_token_is_refused(self, auth_provider: AuthProvider) -> None:
        with pytest.raises(InvalidToken):
            await auth_provider.refresh("no-such-refresh-token")

    async def test_logout_then_refresh_is_refused(self, auth_provider: AuthProvider) -> None:
        session = await auth_provider.register(unique_email(), PASSWORD)
        principal = await auth_provider.authenticate(session.access_token)
        await auth_provider.logout(
            principal, session.refresh_token, access_token=session.access_token
        )
        with pytest.raises(InvalidToken):
            await auth_provider.refresh(session.refresh_token)

    async def test_logout_twice_is_harmless(self, auth_provider: AuthProvider) -> None:
        session = await auth_provider.register(unique_email(), PASSWORD)
        principal = await auth_provider.authenticate(session.access_token)
        for _ in range(2):
            await auth_provider.logout(
                principal, session.refresh_token, access_token=session.access_token
            )

    async def test_password_reset_answers_the_same_for_known_and_unknown_emails(
        self, auth_provider: AuthProvider
    ) -> None:
        email = unique_email()
        await auth_provider.register(email, PASSWORD)
        await auth_provider.request_password_reset(email)
        await auth_provider.request_password_reset(unique_email())

    async def test_health_is_reported(self, auth_provider: AuthProvider) -> None:
        check = await auth_provider.health()
        assert check.status == "healthy"
