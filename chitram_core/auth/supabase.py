"""The Supabase provider: supabase-py's async GoTrue client, with users synced to the local table.

The SDK keeps per-user state on its client (the current session, and in some versions its own
Authorization header), so every call gets a fresh client: nothing of one user can leak into
another's request. The HTTP connection pool is shared through the injected ``httpx.AsyncClient``.

Access tokens are verified locally (the project JWT secret, or JWKS) so token checks survive a
Supabase outage, and each successful Supabase login saves an argon2 hash of the password so the
local provider can log the user in while Supabase is down (``supabase_password_fallback``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx
import jwt
import pydantic
from supabase_auth import AsyncGoTrueClient
from supabase_auth.errors import AuthError

from chitram_core.auth import oauth, rules, tokens
from chitram_core.auth import supabase_sessions as sessions
from chitram_core.auth import users as user_repo
from chitram_core.auth.gotrue_errors import CONFIRM_FIRST, gotrue_error
from chitram_core.auth.passwords import HashLimiter, Passwords, hasher_for
from chitram_core.db import Database
from chitram_core.errors import (
    ChitramError,
    ConfigurationError,
    EmailExists,
    InvalidCredentials,
    InvalidEmail,
    InvalidRequest,
    InvalidToken,
    NotFound,
    ProviderUnavailable,
    TokenExpired,
    UserInactive,
)
from chitram_core.models import Check, Principal, Session
from chitram_core.settings import Settings, absolute_http_url

log = logging.getLogger(__name__)

T = TypeVar("T")

AUDIENCE = "authenticated"
JWKS_TTL = 600.0
JWKS_MIN_REFETCH = 30.0


class SupabaseProvider:
    name = "supabase"

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: httpx.AsyncClient | None = None,
        passwords: Passwords | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.supabase_url or not settings.supabase_key:
            raise ConfigurationError(
                "The supabase auth provider needs CHITRAM_SUPABASE_URL and CHITRAM_SUPABASE_KEY"
            )
        self.settings = settings
        self.timeout: float | None = settings.auth_timeout
        self.auth_url = settings.supabase_url.rstrip("/") + "/auth/v1"
        self.issuer = self.auth_url
        self.passwords = passwords or Passwords(
            hasher_for(settings.password_hash_profile),
            limiter=HashLimiter(settings.hash_concurrency, settings.hash_wait_timeout),
        )
        self._key = settings.supabase_key
        self._http = http_client
        self._owns_http = http_client is None
        self._database: Database | None = None
        self._clock = clock
        self._jwks: dict[str, jwt.PyJWK] = {}
        self.verdicts = sessions.Verdicts(settings.token_check_ttl, clock=clock)
        self._jwks_fetched_at: float | None = None

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self, database: Database) -> None:
        self._database = database
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.auth_timeout)
        if self.settings.supabase_jwks_url:
            try:
                await self._fetch_jwks()
            except ProviderUnavailable as exc:
                log.warning("could not fetch the Supabase JWKS at start-up: %s", exc.message)

    async def close(self) -> None:
        if self._http is not None and self._owns_http:
            await self._http.aclose()
            self._http = None

    @property
    def database(self) -> Database:
        if self._database is None:
            raise ProviderUnavailable("The supabase auth provider is not started")
        return self._database

    # Flows ----------------------------------------------------------------------------------

    async def register(self, email: str, password: str) -> Session:
        cleaned = rules.clean_email(email)
        await rules.check_new_password(
            password,
            email=cleaned,
            common_check=self.settings.password_common_check,
            min_score=self.settings.password_min_score,
        )
        async with self.database.connect() as conn:
            if await user_repo.by_email(conn, rules.normalize_email(cleaned)) is not None:
                raise EmailExists()
        answer = await self._gotrue(
            lambda c: c.sign_up({"email": cleaned, "password": password}), InvalidRequest
        )
        if answer.user is None:
            raise ProviderUnavailable("Supabase answered a sign-up without a user")
        if answer.session is None:
            # Email confirmation is on: the account exists but cannot be used yet.
            await self._sync(answer.user)
            raise UserInactive(CONFIRM_FIRST, confirmation_required=True)
        return await self._session(answer.session, password=password)

    async def login(self, email: str, password: str) -> Session:
        cleaned = rules.clean_email(email)
        if not rules.password_in_range(password):
            raise InvalidCredentials()
        answer = await self._gotrue(
            lambda c: c.sign_in_with_password({"email": cleaned, "password": password}),
            InvalidCredentials,
        )
        if answer.session is None:
            raise InvalidCredentials()
        return await self._session(answer.session, password=password)

    async def authenticate(self, token: str) -> Principal:
        claims = await self._verify(token, network=True)
        seen = claims or tokens.unverified_claims(token) or {}
        await sessions.refuse_revoked(self.database, token, seen)
        known = claims["sub"] if claims is not None else self.verdicts.recall(token)
        if known:
            async with self.database.connect() as conn:
                row = await user_repo.by_supabase_id(conn, str(known))
            if row is not None:
                return self._principal(row, seen)
        # Unknown here: ask Supabase (once per token per token_check_ttl), and sync.
        try:
            answer = await self._gotrue(lambda c: c.get_user(token), InvalidToken)
            if answer is None:
                raise InvalidToken()
        except (InvalidToken, TokenExpired) as exc:
            self.verdicts.refuse(token, exc)
            raise
        row = await self._sync(answer.user)
        self.verdicts.accept(token, str(answer.user.id))
        return self._principal(row, seen)

    async def vouch(self, token: str) -> Principal | None:
        if not self.issued(token):
            return None
        claims = await self._verify(token, network=False)
        if claims is None:
            return None
        await sessions.refuse_revoked(self.database, token, claims)
        async with self.database.transaction() as conn:
            row = await user_repo.by_supabase_id(conn, str(claims["sub"]))
            if row is None:
                email = claims.get("email")
                if not isinstance(email, str) or not email:
                    return None
                try:
                    normalized = rules.normalize_email(email)
                except InvalidEmail:
                    return None
                if await user_repo.by_email(conn, normalized) is not None:
                    return None  # linking needs Supabase to confirm the email
                row = await user_repo.create(
                    conn,
                    email=email,
                    email_normalized=normalized,
                    provider=self.name,
                    supabase_id=str(claims["sub"]),
                )
        return self._principal(row, claims)

    async def refresh(self, refresh_token: str) -> Session:
        if refresh_token.startswith(tokens.REFRESH_PREFIX):
            raise InvalidToken()
        answer = await self._gotrue(lambda c: c.refresh_session(refresh_token), InvalidToken)
        if answer.session is None:
            raise InvalidToken()
        return await self._session(answer.session)

    async def logout(
        self,
        principal: Principal,
        refresh_token: str | None = None,
        *,
        access_token: str | None = None,
    ) -> None:
        """Revoke the session, here and at GoTrue (by access token: with only a refresh token,
        the session is refreshed once to get one)."""
        jwt_token = access_token if access_token and self.issued(access_token) else None
        if jwt_token is not None:
            await sessions.revoke(self.database, jwt_token, tokens.unverified_claims(jwt_token))
            self.verdicts.forget(jwt_token)
        try:
            if (
                jwt_token is None
                and refresh_token
                and not refresh_token.startswith(tokens.REFRESH_PREFIX)
            ):
                answer = await self._gotrue(
                    lambda c: c.refresh_session(refresh_token), InvalidToken
                )
                jwt_token = answer.session.access_token if answer.session else None
            if jwt_token is not None:
                token = jwt_token
                await self._gotrue(lambda c: c.admin.sign_out(token, "local"), InvalidToken)
        except ProviderUnavailable:
            raise
        except ChitramError:
            pass  # already signed out or never valid: logout is idempotent

    async def request_password_reset(self, email: str) -> None:
        cleaned = rules.clean_email(email)
        try:
            await self._gotrue(lambda c: c.reset_password_for_email(cleaned), InvalidRequest)
        except ProviderUnavailable:
            raise
        except ChitramError as exc:
            # The same answer whether or not the email exists.
            log.info("Supabase refused a password reset request: %s", exc.message)

    def issued(self, token: str) -> bool:
        return tokens.unverified_issuer(token) == self.issuer

    async def health(self) -> Check:
        started = time.perf_counter()
        try:
            response = await self._client_http().get(
                f"{self.auth_url}/health", headers={"apikey": self._key}
            )
        except httpx.HTTPError as exc:
            return Check(status="unhealthy", detail=f"Supabase unreachable ({type(exc).__name__})")
        latency = round((time.perf_counter() - started) * 1000, 2)
        if response.status_code >= 500:
            return Check(
                status="unhealthy", latency_ms=latency, detail=f"HTTP {response.status_code}"
            )
        return Check(status="healthy", latency_ms=latency)

    # Internals ------------------------------------------------------------------------------

    def _client_http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise ProviderUnavailable("The supabase auth provider is not started")
        return self._http

    def _client(self) -> Any:
        """A fresh GoTrue client for one call: no session or header outlives the request."""
        return AsyncGoTrueClient(
            url=self.auth_url,
            headers={"apikey": self._key, "Authorization": f"Bearer {self._key}"},
            http_client=self._client_http(),
            auto_refresh_token=False,
            persist_session=False,
        )

    async def _gotrue(
        self, call: Callable[[Any], Awaitable[T]], default: Callable[[], ChitramError]
    ) -> T:
        try:
            with anyio.fail_after(self.settings.auth_timeout):
                return await call(self._client())
        except (AuthError, TimeoutError, httpx.HTTPError, pydantic.ValidationError) as exc:
            raise gotrue_error(exc, default) from exc

    async def _session(self, session: Any, *, password: str | None = None) -> Session:
        row = await self._sync(session.user, password=password)
        if not row.is_active:
            raise UserInactive()
        return Session(
            user=user_repo.to_user(row),
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            expires_in=int(session.expires_in),
        )

    async def _sync(self, remote: Any, *, password: str | None = None) -> Any:
        """Sync-on-auth: find the local row by Supabase id, else link an existing account of
        the email (only as :meth:`proves_local_account` allows), else create it. Saves the
        fallback hash."""
        supabase_id = str(remote.id)
        if not remote.email:
            raise InvalidRequest("This Supabase account has no email address")
        email = rules.clean_email(remote.email)
        normalized = rules.normalize_email(email)
        confirmed = remote.email_confirmed_at is not None or remote.confirmed_at is not None

        async with self.database.connect() as conn:
            existing = await user_repo.by_supabase_id(conn, supabase_id)
            candidate = None if existing is not None else await user_repo.by_email(conn, normalized)
        proved_hash = None
        if candidate is not None and await self.proves_local_account(candidate, password):
            proved_hash = candidate.password_hash

        new_hash = None
        if password is not None and self.settings.supabase_password_fallback:
            old_hash = existing.password_hash if existing is not None else proved_hash
            if old_hash is None or not await self.passwords.verify(old_hash, password):
                new_hash = await self.passwords.hash(password)

        async with self.database.transaction() as conn:
            row = await user_repo.by_supabase_id(conn, supabase_id)
            if row is None:
                row = await user_repo.by_email(conn, normalized)
                if row is None:
                    row = await user_repo.create(
                        conn,
                        email=email,
                        email_normalized=normalized,
                        provider=self.name,
                        supabase_id=supabase_id,
                        password_hash=new_hash,
                    )
                    return row
                proved = row.password_hash is None or (
                    proved_hash is not None and row.password_hash == proved_hash
                )
                await user_repo.link_supabase_identity(
                    conn,
                    row,
                    supabase_id,
                    email_confirmed=confirmed,
                    proven=proved,
                    refusal=(
                        "An account with this email already exists; it is linked to Supabase "
                        "only once Supabase confirms the email address and you sign in with "
                        "the account's password"
                    ),
                    refusal_error=EmailExists,
                )
            if new_hash is not None:
                await user_repo.update(conn, row.id, password_hash=new_hash)
            fresh = await user_repo.by_id(conn, row.id)
        return fresh

    async def proves_local_account(self, row: Any, password: str | None) -> bool:
        """The linking rule: a Supabase identity may take over the existing account ``row`` of
        the same email only when that account has no local password, or the Supabase sign-in
        carried the password that verifies against the local hash. (A confirmed email alone is
        not proof: a project that auto-confirms would hand any local account to anyone.)
        Sign-ins without a password (OAuth, magic links) can link password-less accounts only.
        """
        if row.supabase_id is not None:
            return False
        if row.password_hash is None:
            return True
        if password is None:
            return False
        return await self.passwords.verify(row.password_hash, password)

    def _principal(self, row: Any, claims: dict[str, Any]) -> Principal:
        if not row.is_active:
            raise UserInactive()
        session_id = claims.get("session_id")
        return Principal(
            user_id=row.id,
            email=row.email,
            provider=self.name,
            token_id=session_id if isinstance(session_id, str) else None,
        )

    async def _verify(self, token: str, *, network: bool) -> dict[str, Any] | None:
        """Verified claims using the project secret or JWKS; None when neither can check this
        token here (no secret, no key for its ``kid`` in the cache and ``network`` is off)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken() from exc
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256":
            if not self.settings.supabase_jwt_secret:
                return None
            key = self.settings.supabase_jwt_secret
        elif self.settings.supabase_jwks_url:
            jwk = await self._jwk(header.get("kid"), network=network)
            if jwk is None:
                return None
            key, algorithm = jwk.key, jwk.algorithm_name or algorithm
        else:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired() from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken() from exc
        return claims

    async def _jwk(self, kid: Any, *, network: bool) -> jwt.PyJWK | None:
        now = self._clock()
        stale = self._jwks_fetched_at is None or now - self._jwks_fetched_at > JWKS_TTL
        unknown = kid not in self._jwks
        may_refetch = (
            self._jwks_fetched_at is None or now - self._jwks_fetched_at > JWKS_MIN_REFETCH
        )
        if network and (stale or (unknown and may_refetch)):
            try:
                await self._fetch_jwks()
            except ProviderUnavailable:
                if not self._jwks:
                    raise
        if kid is None and len(self._jwks) == 1:
            return next(iter(self._jwks.values()))
        found = self._jwks.get(kid) if isinstance(kid, str) else None
        if found is None and network and kid not in self._jwks and self._jwks:
            raise InvalidToken()
        return found

    async def _fetch_jwks(self) -> None:
        url = self.settings.supabase_jwks_url
        assert url is not None
        try:
            with anyio.fail_after(self.settings.auth_timeout):
                response = await self._client_http().get(url, headers={"apikey": self._key})
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json()).keys
        except (TimeoutError, httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            raise ProviderUnavailable(f"Supabase JWKS unavailable ({type(exc).__name__})") from exc
        self._jwks = {k.key_id: k for k in keys if k.key_id}
        self._jwks_fetched_at = self._clock()

    # Social sign-in (server-side PKCE; see chitram_core.auth.oauth) ----------------------------

    @property
    def oauth_providers(self) -> tuple[str, ...]:
        return self.settings.oauth_providers

    def oauth_start(
        self,
        provider: str,
        redirect_to: str,
        *,
        code_challenge: str | None = None,
        check_redirect: bool = True,
    ) -> oauth.OAuthStart:
        """The GoTrue authorize URL for ``provider``; no network call. ``redirect_to`` must be in
        ``CHITRAM_OAUTH_REDIRECTS`` unless the caller built it itself (``check_redirect=False``,
        as the web UI does for its own callback)."""
        if provider not in self.settings.oauth_providers:
            raise NotFound("This sign-in provider is not configured")
        if not absolute_http_url(redirect_to):
            raise InvalidRequest("redirect_to must be an absolute http(s) URL")
        if check_redirect and not oauth.redirect_allowed(
            redirect_to, self.settings.oauth_redirects
        ):
            raise InvalidRequest("redirect_to is not an allowed redirect URL")
        verifier: str | None = None
        if code_challenge is None:
            verifier = oauth.new_verifier()
            code_challenge = oauth.challenge_of(verifier)
        elif not oauth.CHALLENGE.fullmatch(code_challenge):
            raise InvalidRequest("code_challenge must be an S256 challenge (43 base64url chars)")
        state = oauth.new_state()
        target = oauth.with_query(redirect_to, state=state)
        return oauth.OAuthStart(
            url=oauth.authorize_url(self.auth_url, provider, target, code_challenge),
            provider=provider,
            state=state,
            verifier=verifier,
            redirect_to=target,
        )

    async def oauth_finish(
        self, code: str, verifier: str, *, principal: Principal | None = None
    ) -> Session:
        """Exchange a PKCE code (``grant_type=pkce``) for a session of the local user linked to
        the Supabase identity. A signed-in ``principal`` is the proof that lets an identity link
        onto that principal's own account when it has a local password."""
        code, verifier = oauth.check_code(code, verifier)
        body = await self._pkce_exchange(code, verifier)
        user = body.get("user")
        access, refresh = body.get("access_token"), body.get("refresh_token")
        if (
            not isinstance(user, dict)
            or not isinstance(access, str)
            or not isinstance(refresh, str)
        ):
            raise ProviderUnavailable("Supabase answered the code exchange without a session")
        row = await self._oauth_sync(user, principal)
        if not row.is_active:
            raise UserInactive()
        expires_in = body.get("expires_in")
        return Session(
            user=user_repo.to_user(row),
            access_token=access,
            refresh_token=refresh,
            expires_in=int(expires_in) if isinstance(expires_in, int | float) else 3600,
        )

    async def _pkce_exchange(self, code: str, verifier: str) -> dict[str, Any]:
        url = f"{self.auth_url}/token?grant_type=pkce"
        try:
            with anyio.fail_after(self.settings.auth_timeout):
                response = await self._client_http().post(
                    url,
                    json={"auth_code": code, "code_verifier": verifier},
                    headers={"apikey": self._key, "Authorization": f"Bearer {self._key}"},
                )
        except (TimeoutError, httpx.HTTPError) as exc:
            raise ProviderUnavailable(
                f"Supabase did not answer the code exchange ({type(exc).__name__})"
            ) from exc
        status = response.status_code
        if status >= 500 or status == 429:
            raise ProviderUnavailable(f"Supabase is unavailable (HTTP {status})")
        try:
            body = response.json()
        except ValueError:
            body = None
        if status != 200:
            code_name = (
                (body.get("error_code") or body.get("code")) if isinstance(body, dict) else None
            )
            log.info("Supabase refused a PKCE code exchange: HTTP %s %s", status, code_name)
            if code_name in {"user_banned"}:
                raise UserInactive()
            raise InvalidRequest(
                "This sign-in link is invalid, expired or was already used; start the sign-in again"
            )
        if not isinstance(body, dict):
            raise ProviderUnavailable("Supabase answered the code exchange with no JSON object")
        return body

    async def _oauth_sync(self, remote: dict[str, Any], principal: Principal | None) -> Any:
        """Sync-on-auth for an OAuth identity: by Supabase id, else link by email under the one
        linking rule (``users.link_supabase_identity``), else create."""
        supabase_id, email = remote.get("id"), remote.get("email")
        if not isinstance(supabase_id, str) or not supabase_id:
            raise ProviderUnavailable("Supabase answered the code exchange without a user id")
        if not isinstance(email, str) or not email:
            raise InvalidRequest("This account has no email address; Chitram needs one")
        email = rules.clean_email(email)
        normalized = rules.normalize_email(email)
        confirmed = bool(remote.get("email_confirmed_at") or remote.get("confirmed_at"))
        async with self.database.transaction() as conn:
            row = await user_repo.by_supabase_id(conn, supabase_id)
            if row is not None:
                return row
            row = await user_repo.by_email(conn, normalized)
            if row is None:
                return await user_repo.create(
                    conn,
                    email=email,
                    email_normalized=normalized,
                    provider=self.name,
                    supabase_id=supabase_id,
                )
            await user_repo.link_supabase_identity(
                conn,
                row,
                supabase_id,
                email_confirmed=confirmed,
                proven=principal is not None and principal.user_id == row.id,
                # A local password stays the local provider's to check: the identity brings none.
                owner=row.provider if row.password_hash is not None else self.name,
            )
            return await user_repo.by_id(conn, row.id)


def create_provider(settings: Settings) -> SupabaseProvider:
    """The ``chitram.auth`` entry point ``supabase``."""
    return SupabaseProvider(settings)


__all__ = ["SupabaseProvider", "create_provider", "gotrue_error"]
