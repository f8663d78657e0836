"""Moving the schema between Alembic revisions, and reading where it is.

The SDK's admin surface (:mod:`chitram_core.admin`) calls these; Alembic is synchronous, so its
commands run in a worker thread. Alembic's own failures for a revision it cannot find or reach
become :class:`~chitram_core.errors.InvalidRevision`, a mistake an operator can act on, with
Alembic's message (it names the revision).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread

from chitram_core.db.database import Database, alembic_config
from chitram_core.errors import InvalidRevision


@contextmanager
def _revision_errors() -> Iterator[None]:
    from alembic.script.revision import RevisionError
    from alembic.util.exc import CommandError

    try:
        yield
    except (CommandError, RevisionError) as exc:
        raise InvalidRevision(str(exc)) from exc


async def upgrade(database: Database, revision: str) -> None:
    """Apply migrations up to ``revision`` (``head``, an id, or ``+N``)."""
    with _revision_errors():
        await database.upgrade(revision)


async def downgrade(database: Database, revision: str) -> None:
    """Revert migrations down to ``revision`` (an id, ``base``, or ``-N``)."""
    from alembic import command

    def run() -> None:
        command.downgrade(alembic_config(database.url), revision)

    with _revision_errors():
        await anyio.to_thread.run_sync(run)


async def current(database: Database) -> tuple[str, ...]:
    """The revisions the database is at (empty: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    def heads(conn: Any) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(conn).get_current_heads())

    read: Callable[[Any], tuple[str, ...]] = heads
    async with database.connect() as conn:
        return await conn.run_sync(read)


def heads(database: Database) -> tuple[str, ...]:
    """The head revisions of the migrations this version of Chitram ships."""
    from alembic.script import ScriptDirectory

    return tuple(sorted(ScriptDirectory.from_config(alembic_config(database.url)).get_heads()))
