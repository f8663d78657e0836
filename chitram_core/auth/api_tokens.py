"""Personal API tokens: long-lived, scoped credentials for scripts and tools.

A token is ``chitram_pat_`` and 32 random bytes (base64url). The database keeps only
HMAC-SHA256 of it under a key derived from the deployment's signing secret: a token has 256
bits of entropy, so a fast keyed hash is as strong as a slow password hash against guessing,
and it costs microseconds on every request where argon2 would cost tens of milliseconds and
memory (docs/decisions.md). Lookup is by that hash (a unique index); the secret itself is shown
once, when the token is made.

Every request made with a token reads its row (with its user's state), so a revoked token, an
expired one or a disabled user is refused at once by every process sharing the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from datetime import timedelta

from chitram_core.db import Database
from chitram_core.db import api_tokens as token_sql
from chitram_core.db.tables import utcnow
from chitram_core.errors import (
    InsufficientScope,
    InvalidToken,
    NotFound,
    TokenExpired,
    UserInactive,
    ValidationError,
)
from chitram_core.models import ApiToken, CreatedToken, Principal
from chitram_core.settings import Settings

PREFIX = "chitram_pat_"
"""What every API token starts with: the auth chain sends these here, not to a provider."""

SCOPES = ("images:read", "images:write", "images:delete", "tags:write")
"""What a token may be allowed, each a class of routes (docs/http-api.md)."""

MAX_TOKENS_PER_USER = 100
MAX_NAME_LENGTH = 100
MAX_EXPIRES_IN_DAYS = 3650


def is_api_token(token: str) -> bool:
    return token.startswith(PREFIX)


def require_scope(principal: Principal | None, scope: str) -> None:
    """Refuse (403 ``INSUFFICIENT_SCOPE``) a caller whose API token lacks ``scope``; a
    signed-in session (or an anonymous caller) passes."""
    if principal is not None and principal.scopes is not None and scope not in principal.scopes:
        raise InsufficientScope(
            f"This API token does not have the '{scope}' scope",
            scope=scope,
            scopes=sorted(principal.scopes),
        )


def require_session(principal: Principal | None) -> None:
    """Refuse (403 ``INSUFFICIENT_SCOPE``) an API token where only a signed-in session may act:
    managing the account, its tokens included."""
    if principal is not None and principal.scopes is not None:
        raise InsufficientScope(
            "API tokens cannot manage the account or its tokens: sign in", scope="account"
        )


class ApiTokens:
    """``chitram.tokens``: make, list, revoke and check personal API tokens."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.database = database
        self._key = hmac.new(
            settings.signing_secret.encode(), b"chitram personal api tokens", hashlib.sha256
        ).digest()

    def hash(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    async def create(
        self,
        principal: Principal,
        name: str,
        scopes: Iterable[str],
        expires_in_days: int | None = None,
    ) -> CreatedToken:
        """A new token for the caller, who must be signed in (a token cannot make tokens).
        ``expires_in_days`` None: it never expires (revoke it instead)."""
        require_session(principal)
        name, chosen = _check_name(name), _check_scopes(scopes)
        if expires_in_days is not None and (
            isinstance(expires_in_days, bool)
            or not isinstance(expires_in_days, int)
            or not 1 <= expires_in_days <= MAX_EXPIRES_IN_DAYS
        ):
            raise ValidationError(
                f"expires_in_days must be a whole number from 1 to {MAX_EXPIRES_IN_DAYS}",
                field="expires_in_days",
            )
        token = PREFIX + secrets.token_urlsafe(32)
        created = utcnow()
        expires = created + timedelta(days=expires_in_days) if expires_in_days else None
        token_id = str(uuid.uuid4())
        async with self.database.transaction() as conn:
            if await token_sql.count_for_user(conn, principal.user_id) >= MAX_TOKENS_PER_USER:
                raise ValidationError(
                    f"At most {MAX_TOKENS_PER_USER} API tokens per user: revoke some first",
                    field="name",
                )
            await token_sql.insert_token(
                conn,
                token_id=token_id,
                user_id=principal.user_id,
                name=name,
                scopes=" ".join(chosen),
                token_hash=self.hash(token),
                created_at=created,
                expires_at=expires,
            )
        return CreatedToken(
            id=token_id,
            name=name,
            scopes=chosen,
            token=token,
            created_at=created,
            expires_at=expires,
        )

    async def list(self, principal: Principal) -> list[ApiToken]:
        """The caller's tokens, newest first, without their secrets."""
        require_session(principal)
        async with self.database.connect() as conn:
            rows = await token_sql.for_user(conn, principal.user_id)
        return [
            ApiToken(
                id=row.id,
                name=row.name,
                scopes=tuple(row.scopes.split()),
                created_at=row.created_at,
                expires_at=row.expires_at,
            )
            for row in rows
        ]

    async def revoke(self, principal: Principal, token_id: str) -> None:
        """Revoke one of the caller's tokens: refused from the next request on, everywhere.
        :class:`NotFound` when the caller has no token with this id."""
        require_session(principal)
        async with self.database.transaction() as conn:
            if not await token_sql.delete_token(conn, principal.user_id, token_id):
                raise NotFound("No API token with this id", token_id=token_id)

    async def authenticate(self, token: str) -> Principal:
        """The caller behind an API token, with its scopes: 401 when it is unknown (or
        revoked), expired, or its user is disabled."""
        async with self.database.connect() as conn:
            row = await token_sql.by_hash(conn, self.hash(token))
        if row is None:
            raise InvalidToken("The API token is not valid (unknown or revoked)")
        if row.expires_at is not None and row.expires_at <= utcnow():
            raise TokenExpired("The API token has expired")
        if not row.is_active:
            raise UserInactive()
        return Principal(
            user_id=row.user_id,
            email=row.email,
            provider=row.provider,
            scopes=frozenset(row.scopes.split()),
            api_token_id=row.id,
        )


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("The token needs a name", field="name")
    cleaned = name.strip()
    if len(cleaned) > MAX_NAME_LENGTH or not cleaned.isprintable():
        raise ValidationError(
            f"The name must be printable and at most {MAX_NAME_LENGTH} characters", field="name"
        )
    return cleaned


def _check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    if isinstance(scopes, str):
        raise ValidationError("scopes must be a list of scope names", field="scopes")
    chosen = list(scopes)
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise ValidationError(
            f"scopes must be a non-empty list from: {', '.join(SCOPES)}",
            field="scopes",
            allowed=list(SCOPES),
        )
    return tuple(s for s in SCOPES if s in chosen)
