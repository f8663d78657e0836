"""SQL for users, their refresh tokens and their linked identities (every auth provider's).

Verbs take an :class:`AsyncConnection`; the caller holds the transaction
(``Database.transaction()``), so a provider composes them into one unit of work.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import refresh_tokens, users, utcnow
from chitram_core.errors import EmailExists

# users --------------------------------------------------------------------------------------


async def by_id(conn: AsyncConnection, user_id: str) -> Any | None:
    return (await conn.execute(select(users).where(users.c.id == user_id))).first()


async def for_token(conn: AsyncConnection, user_id: str, family_id: str | None) -> Any | None:
    """The user row for an access token, with ``family_revoked``: whether the token's session
    family (``family_id``, when it has one) has a revoked refresh token. One round trip, where
    a user query and a revocation query took two on every authenticated request."""
    if family_id is None:
        return (await conn.execute(_FOR_TOKEN, {"user_id": user_id})).first()
    params = {"user_id": user_id, "family_id": family_id}
    return (await conn.execute(_FOR_TOKEN_IN_FAMILY, params)).first()


def _for_token(revoked: ColumnElement[bool]) -> Any:
    return select(users, revoked.label("family_revoked")).where(users.c.id == bindparam("user_id"))


# Built once (every authenticated request runs one): see ``upsert.insert_or_ignore``.
_FOR_TOKEN = _for_token(literal(False))
_FOR_TOKEN_IN_FAMILY = _for_token(
    select(literal(1))
    .where(
        refresh_tokens.c.family_id == bindparam("family_id"),
        refresh_tokens.c.revoked_at.is_not(None),
    )
    .exists()
)


async def by_email(conn: AsyncConnection, email_normalized: str) -> Any | None:
    return (
        await conn.execute(select(users).where(users.c.email_normalized == email_normalized))
    ).first()


async def by_supabase_id(conn: AsyncConnection, supabase_id: str) -> Any | None:
    return (await conn.execute(select(users).where(users.c.supabase_id == supabase_id))).first()


async def create(
    conn: AsyncConnection,
    *,
    email: str,
    email_normalized: str,
    provider: str,
    password_hash: str | None = None,
    supabase_id: str | None = None,
) -> Any:
    """Insert a user; EmailExists when the (case-insensitive) email is taken, even by a race."""
    user_id = str(uuid.uuid4())
    values = {
        "id": user_id,
        "email": email,
        "email_normalized": email_normalized,
        "password_hash": password_hash,
        "provider": provider,
        "supabase_id": supabase_id,
        "is_active": True,
        "created_at": utcnow(),
    }
    try:
        async with conn.begin_nested():
            await conn.execute(insert(users).values(**values))
    except IntegrityError as exc:
        raise EmailExists() from exc
    row = await by_id(conn, user_id)
    assert row is not None
    return row


async def update_user(conn: AsyncConnection, user_id: str, **values: Any) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(**values))


async def link_identity(
    conn: AsyncConnection, user_id: str, supabase_id: str, *, provider: str, now: datetime
) -> None:
    """Link the user to a Supabase identity (``provider`` owns the row afterwards) and revoke
    the user's live refresh tokens: the decision to link is the caller's."""
    await update_user(conn, user_id, supabase_id=supabase_id, provider=provider)
    await revoke_user(conn, user_id, now)


# refresh tokens -----------------------------------------------------------------------------


async def add_refresh_token(
    conn: AsyncConnection,
    *,
    user_id: str,
    family_id: str,
    token_hash: str,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        insert(refresh_tokens).values(
            id=str(uuid.uuid4()),
            user_id=user_id,
            family_id=family_id,
            token_hash=token_hash,
            created_at=created_at,
            expires_at=expires_at,
        )
    )


async def refresh_token(
    conn: AsyncConnection, token_hash: str, *, for_update: bool = False
) -> Any | None:
    """The refresh token's row by its hash (locked for the transaction with ``for_update``)."""
    query = select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def mark_used(conn: AsyncConnection, token_id: str, now: datetime) -> bool:
    """Mark the token rotated; False when it already was (a concurrent refresh won)."""
    claimed = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.id == token_id, refresh_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(claimed.rowcount == 1)


async def revoke_family(conn: AsyncConnection, family_id: str, now: datetime) -> None:
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


# administration -----------------------------------------------------------------------------


async def page(
    conn: AsyncConnection, *, limit: int, offset: int = 0, active: bool | None = None
) -> list[Any]:
    """Users oldest first (``created_at``, then ``id``: a stable order to page through), only
    the enabled or disabled ones when ``active`` says so."""
    query = select(users).order_by(users.c.created_at, users.c.id).limit(limit).offset(offset)
    if active is not None:
        query = query.where(users.c.is_active == active)
    return list((await conn.execute(query)).all())


async def set_active(conn: AsyncConnection, user_id: str, active: bool, now: datetime) -> None:
    """Enable or disable a user; disabling also revokes the user's live refresh tokens, so every
    session ends (access tokens are refused from the flag, at once)."""
    await update_user(conn, user_id, is_active=active)
    if not active:
        await revoke_user(conn, user_id, now)


async def revoke_user(conn: AsyncConnection, user_id: str, now: datetime) -> None:
    """Revoke every live refresh token of the user."""
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
