"""The local provider: argon2id password hashes and HS256 JWTs, with no network anywhere.

Refresh tokens are opaque, stored as SHA-256 hashes, and rotated on every use. All tokens issued
from one login form a family; presenting an already-rotated token (a sign of theft) revokes the
whole family, and logout revokes it too. As GoTrue's reuse interval, a token presented again
within ``refresh_reuse_interval`` seconds of its rotation gets the same successor (parallel
requests of one browser each renewing the session are not theft). The successor is an HMAC of
its parent under the server secret, so it can be handed out again without being stored.
Access tokens carry the family as ``sid`` so a revoked session's access tokens stop working
before they expire.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.auth import rules, tokens
from chitram_core.auth import users as user_repo
from chitram_core.auth.passwords import HashLimiter, Passwords, hasher_for
from chitram_core.db import Database
from chitram_core.db import users as user_sql
from chitram_core.errors import (
    InvalidCredentials,
    InvalidToken,
    ProviderUnavailable,
    TokenExpired,
    UserInactive,
)
from chitram_core.models import Check, Principal, Session
from chitram_core.settings import Settings

log = logging.getLogger(__name__)


class LocalProvider:
    """Users whose passwords Chitram checks itself (and Supabase users' saved fallback hashes)."""

    name = "local"

    def __init__(
        self,
        settings: Settings,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float | None = None,
    ) -> None:
        self.settings = settings = settings.with_jwt_secret()
        self.timeout = timeout if timeout is not None else max(settings.auth_timeout, 10.0)
        self.passwords = Passwords(
            hasher or hasher_for(settings.password_hash_profile),
            limiter=HashLimiter(settings.hash_concurrency, settings.hash_wait_timeout),
        )
        self._clock = clock
        self._database: Database | None = None

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self, database: Database) -> None:
        self._database = database
        await self.passwords.dummy_hash()

    async def close(self) -> None:
        self._database = None

    @property
    def database(self) -> Database:
        if self._database is None:
            raise ProviderUnavailable("The local auth provider is not started", provider=self.name)
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
        password_hash = await self.passwords.hash(password)
        async with self.database.transaction() as conn:
            row = await user_repo.create(
                conn,
                email=cleaned,
                email_normalized=rules.normalize_email(cleaned),
                provider=self.name,
                password_hash=password_hash,
            )
            return await self._new_session(conn, row, family_id=str(uuid.uuid4()))

    async def login(self, email: str, password: str) -> Session:
        normalized = rules.normalize_email(email)
        if not rules.password_in_range(password):
            raise InvalidCredentials()
        async with self.database.connect() as conn:
            row = await user_repo.by_email(conn, normalized)
        stored = row.password_hash if row is not None and self._may_log_in(row) else None
        # Unknown users are verified against a dummy hash: the same time as a wrong password.
        if not await self.passwords.verify(stored, password) or row is None:
            raise InvalidCredentials()
        if not row.is_active:
            raise UserInactive()
        new_hash = None
        if self.passwords.needs_rehash(row.password_hash):
            new_hash = await self.passwords.hash(password)
        async with self.database.transaction() as conn:
            if new_hash is not None:
                await user_repo.update(conn, row.id, password_hash=new_hash)
            return await self._new_session(conn, row, family_id=str(uuid.uuid4()))

    async def authenticate(self, token: str) -> Principal:
        claims = tokens.decode_access_token(
            token, secret=self.settings.signing_secret, issuer=self.settings.jwt_issuer
        )
        session_id = claims.get("sid")
        family = session_id if isinstance(session_id, str) else None
        async with self.database.connect() as conn:
            row = await user_sql.for_token(conn, str(claims["sub"]), family)
        if row is None or row.family_revoked:
            raise InvalidToken()
        if not row.is_active:
            raise UserInactive()
        return Principal(
            user_id=row.id,
            email=row.email,
            provider=self.name,
            token_id=session_id if isinstance(session_id, str) else None,
        )

    async def vouch(self, token: str) -> Principal | None:
        if not self.issued(token):
            return None
        return await self.authenticate(token)

    async def refresh(self, refresh_token: str) -> Session:
        token_hash = tokens.hash_refresh_token(refresh_token)
        now = self._now()
        # A detected reuse must commit its revocation, so errors are raised after the block.
        outcome: Session | Exception
        async with self.database.transaction() as conn:
            outcome = await self._rotate(conn, refresh_token, token_hash, now)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def logout(
        self,
        principal: Principal,
        refresh_token: str | None = None,
        *,
        access_token: str | None = None,
    ) -> None:
        families: set[str] = set()
        async with self.database.transaction() as conn:
            if refresh_token is not None:
                row = await user_sql.refresh_token(conn, tokens.hash_refresh_token(refresh_token))
                if row is not None and row.user_id == principal.user_id:
                    families.add(row.family_id)
            if principal.provider == self.name and principal.token_id:
                families.add(principal.token_id)
            for family_id in families:
                await user_sql.revoke_family(conn, family_id, self._now())

    async def request_password_reset(self, email: str) -> None:
        # Local accounts have no mailer; the request is acknowledged the same way regardless.
        rules.normalize_email(email)
        log.info("password reset requested for a local account; no mailer is configured")

    def issued(self, token: str) -> bool:
        if token.startswith(tokens.REFRESH_PREFIX):
            return True
        return tokens.unverified_issuer(token) == self.settings.jwt_issuer

    async def health(self) -> Check:
        return Check(status="healthy" if self._database is not None else "unhealthy")

    # Internals ------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _may_log_in(self, row: Any) -> bool:
        if row.provider == self.name:
            return True
        # Another provider's user: only with the hash saved at their last successful login.
        return row.provider == "supabase" and self.settings.supabase_password_fallback

    async def _rotate(
        self, conn: AsyncConnection, refresh_token: str, token_hash: str, now: datetime
    ) -> Session | Exception:
        row = await user_sql.refresh_token(conn, token_hash, for_update=True)
        if row is None or row.revoked_at is not None:
            return InvalidToken()
        if row.used_at is not None:
            return await self._reused(conn, row, refresh_token, now)
        if row.expires_at <= now:
            return TokenExpired()
        if not await user_sql.mark_used(conn, row.id, now):
            # A concurrent refresh won: this is a reuse.
            fresh = await user_sql.refresh_token(conn, token_hash)
            return await self._reused(conn, fresh if fresh is not None else row, refresh_token, now)
        user = await user_repo.by_id(conn, row.user_id)
        if user is None:
            return InvalidToken()
        if not user.is_active:
            return UserInactive()
        successor = tokens.successor_refresh_token(self.settings.signing_secret, refresh_token)
        return await self._new_session(conn, user, family_id=row.family_id, refresh_token=successor)

    async def _reused(
        self, conn: AsyncConnection, row: Any, refresh_token: str, now: datetime
    ) -> Session | Exception:
        """A rotated token again: within the reuse interval the same successor with a fresh
        access token; later, a sign of theft, and the whole family is revoked."""
        used_at = row.used_at or now
        if (now - used_at).total_seconds() <= self.settings.refresh_reuse_interval:
            successor = tokens.successor_refresh_token(self.settings.signing_secret, refresh_token)
            child = await user_sql.refresh_token(conn, tokens.hash_refresh_token(successor))
            if child is None or child.revoked_at is not None or child.expires_at <= now:
                return InvalidToken()
            user = await user_repo.by_id(conn, row.user_id)
            if user is None:
                return InvalidToken()
            if not user.is_active:
                return UserInactive()
            return self._session(user, family_id=row.family_id, refresh_token=successor)
        log.warning("refresh token reuse detected; revoking family %s", row.family_id)
        await user_sql.revoke_family(conn, row.family_id, now)
        return InvalidToken("This refresh token was already used; the session is revoked")

    async def _new_session(
        self,
        conn: AsyncConnection,
        row: Any,
        *,
        family_id: str,
        refresh_token: str | None = None,
    ) -> Session:
        now = self._clock()
        refresh_token = refresh_token or tokens.new_refresh_token()
        issued_at = datetime.fromtimestamp(now, UTC)
        await user_sql.add_refresh_token(
            conn,
            user_id=row.id,
            family_id=family_id,
            token_hash=tokens.hash_refresh_token(refresh_token),
            created_at=issued_at,
            expires_at=issued_at + timedelta(seconds=self.settings.refresh_token_ttl),
        )
        return self._session(row, family_id=family_id, refresh_token=refresh_token, now=now)

    def _session(
        self, row: Any, *, family_id: str, refresh_token: str, now: float | None = None
    ) -> Session:
        now = self._clock() if now is None else now
        access_token = tokens.encode_access_token(
            secret=self.settings.signing_secret,
            issuer=self.settings.jwt_issuer,
            subject=row.id,
            email=row.email,
            session_id=family_id,
            now=now,
            ttl=self.settings.access_token_ttl,
        )
        return Session(
            user=user_repo.to_user(row),
            access_token=access_token,
            refresh_token=refresh_token,
            expires_in=self.settings.access_token_ttl,
        )


def create_provider(settings: Settings) -> LocalProvider:
    """The ``chitram.auth`` entry point ``local``."""
    return LocalProvider(settings)


__all__ = ["LocalProvider", "create_provider"]
