"""The users table as the auth providers see it: every provider's users live here.

The SQL is in :mod:`chitram_core.db.users` (re-exported here for the providers); this module
keeps the rules, such as when a local account may be linked to a Supabase identity."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db.tables import utcnow
from chitram_core.db.users import by_email, by_id, by_supabase_id, create, link_identity
from chitram_core.db.users import update_user as update
from chitram_core.errors import AccountLinkRefused, ChitramError, EmailExists
from chitram_core.models import User

log = logging.getLogger(__name__)

__all__ = [
    "by_email",
    "by_id",
    "by_supabase_id",
    "create",
    "link_supabase_identity",
    "to_user",
    "update",
]


def to_user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        is_active=bool(row.is_active),
        created_at=row.created_at,
        provider=row.provider,
        supabase_id=row.supabase_id,
    )


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
    """Link the existing local account ``row`` to a Supabase identity (docs/decisions.md): the one
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
    await link_identity(conn, row.id, supabase_id, provider=owner, now=utcnow())
