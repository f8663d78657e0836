"""The users table as the auth providers see it: every provider's users live here."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import refresh_tokens, users, utcnow
from chitram_core.errors import AccountLinkRefused, ChitramError, EmailExists
from chitram_core.models import User

log = logging.getLogger(__name__)


def to_user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        is_active=bool(row.is_active),
        created_at=row.created_at,
        provider=row.provider,
        supabase_id=row.supabase_id,
    )


async def by_id(conn: AsyncConnection, user_id: str) -> Any | None:
    result = await conn.execute(sa.select(users).where(users.c.id == user_id))
    return result.first()


async def by_email(conn: AsyncConnection, email_normalized: str) -> Any | None:
    result = await conn.execute(
        sa.select(users).where(users.c.email_normalized == email_normalized)
    )
    return result.first()


async def by_supabase_id(conn: AsyncConnection, supabase_id: str) -> Any | None:
    result = await conn.execute(sa.select(users).where(users.c.supabase_id == supabase_id))
    return result.first()


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
            await conn.execute(sa.insert(users).values(**values))
    except IntegrityError as exc:
        raise EmailExists() from exc
    row = await by_id(conn, user_id)
    assert row is not None
    return row


async def update(conn: AsyncConnection, user_id: str, **values: Any) -> None:
    await conn.execute(sa.update(users).where(users.c.id == user_id).values(**values))


async def link_supabase_identity(
    conn: AsyncConnection,
    row: Any,
    supabase_id: str,
    *,
    email_confirmed: bool,
    proven: bool,
    refusal: str | None = None,
    refusal_error: type[ChitramError] = AccountLinkRefused,
    owner: str = "supabase",
) -> None:
    """Link the existing local account ``row`` to a Supabase identity (CONTRACT §6.5): the one
    place that decides it, for every sign-in path that links.

    Refused when the account is already linked to another identity or Supabase has not
    confirmed the email (EmailExists), and when the account has a local password that the user
    has not ``proven`` (AccountLinkRefused, with ``refusal`` as its message): whoever controls a
    Supabase identity with the same email must not take over the account. Linking revokes the
    account's local refresh tokens (and so, through their families, its local access tokens).
    ``owner`` is the provider that owns the row afterwards (and answers its password logins).
    """
    if row.supabase_id is not None and row.supabase_id != supabase_id:
        raise EmailExists("An account with this email is already linked to another identity")
    if row.supabase_id == supabase_id:
        return
    if not email_confirmed:
        raise EmailExists(
            "An account with this email already exists; it is linked to Supabase only once "
            "Supabase confirms the email address"
        )
    if row.password_hash is not None and not proven:
        raise refusal_error(refusal)
    log.info("linking local user %s to Supabase user %s", row.id, supabase_id)
    await update(conn, row.id, supabase_id=supabase_id, provider=owner)
    await conn.execute(
        sa.update(refresh_tokens)
        .where(refresh_tokens.c.user_id == row.id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
