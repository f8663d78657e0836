"""What the Supabase provider remembers about tokens it cannot verify alone, and the sessions
signed out here.

*Verdicts*: a token the server cannot verify locally (an ES256 token without JWKS, an HS256
token without the project secret) is checked by asking GoTrue. Every such answer, yes or no, is
remembered for ``CHITRAM_TOKEN_CHECK_TTL`` seconds (default 60) under the token's SHA-256, in a
bounded map (:data:`MAX_VERDICTS`, oldest out first): a token causes at most one provider call
per minute per process, and a flood of bogus tokens costs memory that does not grow.

*Revoked sessions*: GoTrue's sign-out revokes the refresh token, but access tokens are verified
locally and stay valid until they expire. Signing out records the session (the token's
``session_id`` claim, or the token itself when it names none) in ``revoked_sessions`` until the
last access token of that session can have expired; every verification checks it, and the
sweep deletes expired rows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from chitram_core.cache.small import Lru
from chitram_core.db import Database
from chitram_core.db import sessions as session_sql
from chitram_core.errors import ChitramError, InvalidToken, TokenExpired

MAX_VERDICTS = 10_000
"""Tokens whose provider answer is remembered at once (about 200 bytes each)."""

DEFAULT_TOKEN_LIFETIME = 3600
"""GoTrue's default access-token lifetime: the revocation's length when a token has no iat/exp."""


@attrs.frozen
class Verdict:
    """GoTrue's answer for one token: the Supabase user id, or the error it was refused with."""

    supabase_id: str | None
    error: type[ChitramError] | None
    until: float


class Verdicts:
    """A bounded (:class:`~chitram_core.cache.small.Lru`), expiring map of token hash →
    :class:`Verdict`."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = MAX_VERDICTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: Lru[Verdict] = Lru(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Verdict | None:
        key = token_hash(token)
        verdict = self._entries.get(key)
        if verdict is not None and verdict.until <= self._clock():
            self._entries.discard(key)
            return None
        return verdict

    def recall(self, token: str) -> str | None:
        """The Supabase user id remembered for ``token``; raises the error it was refused with;
        None when nothing is remembered."""
        verdict = self.get(token)
        if verdict is not None and verdict.error is not None:
            raise verdict.error()
        return None if verdict is None else verdict.supabase_id

    def accept(self, token: str, supabase_id: str) -> None:
        self._put(token, Verdict(supabase_id, None, self._clock() + self.ttl))

    def refuse(self, token: str, error: ChitramError) -> None:
        kind = TokenExpired if isinstance(error, TokenExpired) else InvalidToken
        self._put(token, Verdict(None, kind, self._clock() + self.ttl))

    def forget(self, token: str) -> None:
        self._entries.discard(token_hash(token))

    def _put(self, token: str, verdict: Verdict) -> None:
        key = token_hash(token)
        self._entries.discard(key)
        self._entries.put(key, verdict)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def session_keys(token: str, claims: dict[str, Any] | None) -> list[str]:
    """The revocation keys a token is checked under: its session's, and its own."""
    keys = [token_hash("token:" + token)]
    session_id = (claims or {}).get("session_id")
    if isinstance(session_id, str) and session_id:
        keys.append(token_hash("session:" + session_id))
    return keys


def revocation_end(claims: dict[str, Any] | None, now: datetime) -> datetime:
    """When every access token of the session signed out ``now`` has expired: a token issued
    just before now lives as long as this one was given (``exp - iat``)."""
    claims = claims or {}
    issued, expires = claims.get("iat"), claims.get("exp")
    lifetime = DEFAULT_TOKEN_LIFETIME
    if isinstance(issued, int | float) and isinstance(expires, int | float) and expires > issued:
        lifetime = int(expires - issued)
    end = now + timedelta(seconds=lifetime)
    if isinstance(expires, int | float):
        end = max(end, datetime.fromtimestamp(expires, UTC))
    return end


async def revoke(database: Database, token: str, claims: dict[str, Any] | None) -> None:
    """Record the session of ``token`` (and the token) as signed out."""
    now = datetime.now(UTC)
    end = revocation_end(claims, now)
    async with database.transaction() as conn:
        for key in session_keys(token, claims):
            await session_sql.revoke(conn, key, end)


async def refuse_revoked(database: Database, token: str, claims: dict[str, Any] | None) -> None:
    """:class:`InvalidToken` when ``token`` or its session was signed out."""
    async with database.connect() as conn:
        revoked = await session_sql.any_revoked(
            conn, session_keys(token, claims), datetime.now(UTC)
        )
    if revoked:
        raise InvalidToken("The session of this token was signed out")
