"""SQL for personal API tokens: only the keyed hash of each secret is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import api_tokens, users

_BY_HASH = (
    select(
        api_tokens.c.id,
        api_tokens.c.user_id,
        api_tokens.c.scopes,
        api_tokens.c.expires_at,
        users.c.email,
        users.c.is_active,
        users.c.provider,
    )
    .select_from(api_tokens.join(users, api_tokens.c.user_id == users.c.id))
    .where(api_tokens.c.token_hash == bindparam("token_hash"))
)
"""Built once: every request made with a token runs it."""

_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.scopes,
    api_tokens.c.created_at,
    api_tokens.c.expires_at,
)


async def insert_token(
    conn: AsyncConnection,
    *,
    token_id: str,
    user_id: str,
    name: str,
    scopes: str,
    token_hash: str,
    created_at: datetime,
    expires_at: datetime | None,
) -> None:
    await conn.execute(
        insert(api_tokens).values(
            id=token_id,
            user_id=user_id,
            name=name,
            scopes=scopes,
            token_hash=token_hash,
            created_at=created_at,
            expires_at=expires_at,
        )
    )


async def by_hash(conn: AsyncConnection, token_hash: str) -> Any | None:
    """The token with this hash and its user's email, state and provider; None if none."""
    return (await conn.execute(_BY_HASH, {"token_hash": token_hash})).first()


async def for_user(conn: AsyncConnection, user_id: str) -> list[Any]:
    """The user's tokens, newest first (no hashes)."""
    query = (
        select(*_COLUMNS)
        .where(api_tokens.c.user_id == user_id)
        .order_by(api_tokens.c.created_at.desc(), api_tokens.c.id)
    )
    return list((await conn.execute(query)).all())


async def count_for_user(conn: AsyncConnection, user_id: str) -> int:
    query = select(api_tokens.c.id).where(api_tokens.c.user_id == user_id)
    return len((await conn.execute(query)).all())


async def delete_token(conn: AsyncConnection, user_id: str, token_id: str) -> bool:
    """Remove the user's token; False when the user has no token with this id."""
    result = await conn.execute(
        delete(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.user_id == user_id)
    )
    return bool(result.rowcount)
