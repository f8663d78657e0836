"""``INSERT ... ON CONFLICT DO NOTHING`` where the dialect has it: one statement, no race."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

UPSERT_DIALECTS = frozenset({"sqlite", "postgresql"})


async def insert_or_ignore(
    conn: AsyncConnection, table: Any, values: dict[str, Any], keys: Sequence[str]
) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING`` (SQLite, PostgreSQL); True when a row went in."""
    from sqlalchemy.dialects import postgresql, sqlite

    statement: Any
    if conn.dialect.name == "postgresql":
        statement = postgresql.insert(table).values(**values)
    else:
        statement = sqlite.insert(table).values(**values)
    result = await conn.execute(statement.on_conflict_do_nothing(index_elements=list(keys)))
    return bool(result.rowcount)
