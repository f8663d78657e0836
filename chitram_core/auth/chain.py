"""The auth failover chain: what ``chitram.auth`` is in the SDK.

Providers are tried in the configured order; only unavailability (timeout, connection error, 5xx,
an open circuit) moves a request on. A definite answer — a session, a wrong password — ends it.
Known users are sent to the provider that owns their row first, and tokens to the provider that
issued them, so local and Supabase users work side by side.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar, cast

import anyio

from chitram_core import plugins
from chitram_core.auth import rules
from chitram_core.auth import users as user_repo
from chitram_core.auth.api_tokens import ApiTokens, is_api_token
from chitram_core.auth.base import AuthProvider
from chitram_core.auth.breaker import Breaker, State
from chitram_core.auth.oauth import OAuthProvider, OAuthStart
from chitram_core.db import Database
from chitram_core.errors import ChitramError, InvalidToken, NotFound, ProviderUnavailable
from chitram_core.models import Check, Principal, Session, User
from chitram_core.observe import Observer
from chitram_core.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class AuthChain:
    def __init__(
        self,
        providers: Sequence[AuthProvider],
        database: Database | None = None,
        *,
        threshold: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        password_common_check: bool = True,
        password_min_score: int = rules.DEFAULT_MIN_SCORE,
        observer: Observer | None = None,
        api_tokens: ApiTokens | None = None,
    ) -> None:
        if not providers:
            raise ValueError("an auth chain needs at least one provider")
        self.providers = tuple(providers)
        self.database = database
        self.api_tokens = api_tokens
        """Personal API tokens (``chitram_pat_...``), checked before any provider."""
        self.password_common_check = password_common_check
        self.password_min_score = password_min_score
        self.breakers = {
            p.name: Breaker(
                p.name, threshold=threshold, cooldown=cooldown, clock=clock, observer=observer
            )
            for p in self.providers
        }

    @classmethod
    async def open(
        cls,
        settings: Settings,
        database: Database,
        *,
        providers: Sequence[AuthProvider] | None = None,
        clock: Callable[[], float] = time.monotonic,
        observer: Observer | None = None,
        api_tokens: ApiTokens | None = None,
    ) -> AuthChain:
        """Load the providers named in ``settings.auth_providers`` (or take ``providers``) and
        start them. A configured provider that cannot load is a PluginError, naming it."""
        if providers is None:
            providers = [
                plugins.load(plugins.AUTH, name)(settings) for name in settings.auth_providers
            ]
        started: list[AuthProvider] = []
        try:
            for provider in providers:
                await provider.start(database)
                started.append(provider)
        except BaseException:
            for provider in reversed(started):
                await provider.close()
            raise
        return cls(
            providers,
            database,
            threshold=settings.breaker_threshold,
            cooldown=settings.breaker_cooldown,
            clock=clock,
            password_common_check=settings.password_common_check,
            password_min_score=settings.password_min_score,
            observer=observer,
            api_tokens=api_tokens,
        )

    async def close(self) -> None:
        for provider in reversed(self.providers):
            try:
                await provider.close()
            except Exception:
                log.exception("auth provider %r failed to close", provider.name)

    async def __aenter__(self) -> AuthChain:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # Flows ----------------------------------------------------------------------------------

    async def register(self, email: str, password: str) -> Session:
        await rules.check_new_password(
            password,
            email=rules.clean_email(email),
            common_check=self.password_common_check,
            min_score=self.password_min_score,
        )
        return await self._first(self.providers, lambda p: p.register(email, password))

    async def login(self, email: str, password: str) -> Session:
        order = await self._owner_first(rules.normalize_email(email))
        return await self._first(order, lambda p: p.login(email, password))

    async def request_password_reset(self, email: str) -> None:
        order = await self._owner_first(rules.normalize_email(email))
        await self._first(order, lambda p: p.request_password_reset(email))

    async def refresh(self, refresh_token: str) -> Session:
        """Sent to the provider that recognises the token; when none does, each is asked, and a
        provider that merely does not know the token ("invalid") does not end the search."""
        owners = [p for p in self.providers if p.issued(refresh_token)]
        if owners:
            return await self._first(owners, lambda p: p.refresh(refresh_token))
        unavailable: ProviderUnavailable | None = None
        rejected: InvalidToken | None = None
        for provider in self.providers:
            try:
                return await self._call(provider, lambda p: p.refresh(refresh_token))
            except ProviderUnavailable as exc:
                unavailable = exc
            except InvalidToken as exc:
                rejected = exc
        raise unavailable or rejected or InvalidToken()

    async def authenticate(self, token: str) -> Principal:
        """The caller behind ``token``, checked by its issuer; when the issuer is down, by any
        provider that can verify it offline (Supabase tokens against the project secret).
        A personal API token (``chitram_pat_...``) is checked against the database first, and
        never sent to a provider."""
        if self.api_tokens is not None and is_api_token(token):
            return await self.api_tokens.authenticate(token)
        owners = [p for p in self.providers if p.issued(token)]
        if not owners:
            raise InvalidToken()
        try:
            return await self._first(owners, lambda p: p.authenticate(token))
        except ProviderUnavailable as unavailable:
            for provider in owners + [p for p in self.providers if p not in owners]:
                principal = await provider.vouch(token)
                if principal is not None:
                    log.info("token vouched for offline by %r", provider.name)
                    return principal
            raise unavailable

    async def logout(
        self,
        principal: Principal,
        refresh_token: str | None = None,
        *,
        access_token: str | None = None,
    ) -> None:
        """Revoke the session behind ``principal`` (and ``refresh_token``). Idempotent."""
        names = {principal.provider}
        if refresh_token is not None:
            names |= {p.name for p in self.providers if p.issued(refresh_token)}
        for provider in self.providers:
            if provider.name in names:
                await self._call(
                    provider,
                    lambda p: p.logout(principal, refresh_token, access_token=access_token),
                )

    async def get_user(self, user_id: str) -> User:
        database = self._require_database()
        async with database.connect() as conn:
            row = await user_repo.by_id(conn, user_id)
        if row is None:
            raise NotFound("User not found")
        return user_repo.to_user(row)

    async def checks(self) -> dict[str, Check]:
        """One health check per provider, keyed by its name, including its circuit state."""
        results: dict[str, Check] = {}
        for provider in self.providers:
            breaker = self.breakers[provider.name]
            key = provider.name
            state = breaker.state
            if state is State.OPEN:
                wait = math.ceil(breaker.retry_after())
                results[key] = Check(status="unhealthy", detail=f"circuit open; retry in {wait}s")
                continue
            started = time.perf_counter()
            try:
                with anyio.fail_after(provider.timeout):
                    check = await provider.health()
            except (TimeoutError, ProviderUnavailable) as exc:
                check = Check(status="unhealthy", detail=str(exc) or "timed out")
            latency = check.latency_ms
            if latency is None:
                latency = round((time.perf_counter() - started) * 1000, 2)
            detail = f"circuit {state.value}" + (f"; {check.detail}" if check.detail else "")
            status = check.status
            if state is State.HALF_OPEN and status == "healthy":
                status = "degraded"
            results[key] = Check(status=status, latency_ms=latency, detail=detail)
        return results

    # Social sign-in (OAuth through Supabase, server-side PKCE) -------------------------------

    @property
    def oauth_providers(self) -> tuple[str, ...]:
        """The identity providers (``github``, ``google``) a sign-in page may offer."""
        provider = self._oauth_provider(required=False)
        return provider.oauth_providers if provider is not None else ()

    async def oauth_start(
        self,
        provider: str,
        redirect_to: str,
        *,
        code_challenge: str | None = None,
        check_redirect: bool = True,
    ) -> OAuthStart:
        """Where to send the user to sign in with ``provider``, plus the ``state`` and PKCE
        ``verifier`` the caller keeps (server-side) until they come back to ``redirect_to``
        with ``?state=...&code=...``. NotFound for a provider that is not configured;
        InvalidRequest for a ``redirect_to`` not in ``CHITRAM_OAUTH_REDIRECTS``.
        ProviderUnavailable when Supabase does not answer its health check (through the
        provider's breaker, so a dead Supabase opens the circuit): nobody is sent to a dead
        host."""
        oauth_provider = self._oauth_provider(required=True)
        assert oauth_provider is not None
        start = oauth_provider.oauth_start(
            provider,
            redirect_to,
            code_challenge=code_challenge,
            check_redirect=check_redirect,
        )
        await self._call(cast(AuthProvider, oauth_provider), _reachable)
        return start

    async def oauth_finish(
        self, code: str, verifier: str, *, principal: Principal | None = None
    ) -> Session:
        """Exchange the ``code`` the user came back with (and the kept ``verifier``) for a
        session. Only the provider that started the flow can finish it: no failover."""
        oauth_provider = self._oauth_provider(required=True)
        assert oauth_provider is not None
        return await self._call(
            cast(AuthProvider, oauth_provider),
            lambda _: oauth_provider.oauth_finish(code, verifier, principal=principal),
        )

    def _oauth_provider(self, *, required: bool) -> OAuthProvider | None:
        for provider in self.providers:
            if isinstance(provider, OAuthProvider) and provider.oauth_providers:
                return provider
        if required:
            raise NotFound("Social sign-in is not configured")
        return None

    # The chain itself -----------------------------------------------------------------------

    async def _first(
        self, providers: Iterable[AuthProvider], call: Callable[[AuthProvider], Awaitable[T]]
    ) -> T:
        """The first definite answer; ProviderUnavailable only when every provider is down."""
        unavailable: ProviderUnavailable | None = None
        for provider in providers:
            try:
                return await self._call(provider, call)
            except ProviderUnavailable as exc:
                log.warning("auth provider %r unavailable: %s", provider.name, exc.message)
                unavailable = exc
        raise unavailable or ProviderUnavailable("No auth provider is available")

    async def _call(
        self, provider: AuthProvider, call: Callable[[AuthProvider], Awaitable[T]]
    ) -> T:
        """One call behind the provider's breaker and timeout."""
        breaker = self.breakers[provider.name]
        if not breaker.allow():
            retry_after = max(1, math.ceil(breaker.retry_after()))
            raise ProviderUnavailable(
                f"The {provider.name} auth provider is unavailable (circuit open)",
                retry_after=retry_after,
                provider=provider.name,
            )
        try:
            with anyio.fail_after(provider.timeout):
                result = await call(provider)
        except TimeoutError:
            breaker.record_failure()
            raise ProviderUnavailable(
                f"The {provider.name} auth provider timed out", provider=provider.name
            ) from None
        except ProviderUnavailable:
            breaker.record_failure()
            raise
        except ChitramError:
            breaker.record_success()
            raise
        except BaseException:
            breaker.release()
            raise
        breaker.record_success()
        return result

    async def _owner_first(self, email_normalized: str) -> list[AuthProvider]:
        """The chain order, with the provider that owns this email's user row moved first."""
        order = list(self.providers)
        if self.database is None:
            return order
        async with self.database.connect() as conn:
            row = await user_repo.by_email(conn, email_normalized)
        owner = row.provider if row is not None else None
        return sorted(order, key=lambda p: p.name != owner)

    def _require_database(self) -> Database:
        if self.database is None:
            raise ProviderUnavailable("The auth chain has no database")
        return self.database


async def _reachable(provider: AuthProvider) -> None:
    """The provider answers its health check; ProviderUnavailable (a breaker failure) if not."""
    check = await provider.health()
    if check.status == "unhealthy":
        raise ProviderUnavailable(
            f"The {provider.name} auth provider is unavailable ({check.detail or 'unhealthy'})",
            provider=provider.name,
        )
