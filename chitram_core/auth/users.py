"""The users table as the auth providers see it: every provider's users live here."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import refresh_tokens, users, utcnow
from chitram_core.errors import EmailExists
from chitram_core.models import User


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


async def link_identity(conn: AsyncConnection, user_id: str, *, supabase_id: str) -> None:
    """Hand an existing account to its Supabase identity and end its local sessions: whoever
    held a local refresh token before the link must sign in again."""
    await update(conn, user_id, supabase_id=supabase_id, provider="supabase")
    await conn.execute(
        sa.update(refresh_tokens)
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def update(conn: AsyncConnection, user_id: str, **values: Any) -> None:
    await conn.execute(sa.update(users).where(users.c.id == user_id).values(**values))
