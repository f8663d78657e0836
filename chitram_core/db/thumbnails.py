"""SQL for the ``thumbnails`` table: one row per (content, thumbnail parameters).

The row is what the API reads (status, error, size for the ETag); the work itself is a
``thumbnail`` job in the ``jobs`` table (see :mod:`chitram_core.thumbnailer`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db import deletions
from chitram_core.db import jobs as jobs_sql
from chitram_core.db.tables import blobs, jobs, ready_columns, thumbnails, utcnow
from chitram_core.db.upsert import UPSERT_DIALECTS, insert_or_ignore

RETRIED = ("pending", "stalled")
"""Statuses whose render is still to be (re)tried."""


async def add_pending(conn: AsyncConnection, key: str, sha256: str, params: str) -> bool:
    """A pending row unless one exists (whatever its status); True when it went in."""
    now = utcnow()
    values = dict(
        key=key,
        sha256=sha256,
        params=params,
        status="pending",
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    if conn.dialect.name in UPSERT_DIALECTS:
        return await insert_or_ignore(conn, thumbnails, values, ("key",))  # one statement
    exists = (await conn.execute(select(thumbnails.c.key).where(thumbnails.c.key == key))).first()
    if exists is not None:
        return False
    await conn.execute(insert(thumbnails).values(**values))
    return True


# The statements of every thumbnail job, built once: building one (and its cache key) costs
# more than running it.
_GET = select(thumbnails).where(thumbnails.c.key == bindparam("key"))
_READY = (
    update(thumbnails)
    .where(thumbnails.c.key == bindparam("b_key"))
    .values(
        status="ready",
        error=None,
        content_type=bindparam("b_content_type"),
        size=bindparam("b_size"),
        width=bindparam("b_width"),
        height=bindparam("b_height"),
        updated_at=bindparam("b_updated_at", type_=thumbnails.c.updated_at.type),
    )
)
_READY_WHILE_BLOB = _READY.where(
    select(blobs.c.sha256).where(blobs.c.sha256 == bindparam("b_blob")).exists()
)
# PostgreSQL runs a data-modifying WITH once whether or not the statement reads it.
_READY_WHILE_BLOB_AND_FINISHED = _READY_WHILE_BLOB.add_cte(jobs_sql.FINISH.cte("finished"))


async def get(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    row = (await conn.execute(_GET, {"key": key})).mappings().first()
    return dict(row) if row is not None else None


async def mark_ready(
    conn: AsyncConnection,
    key: str,
    *,
    content_type: str,
    size: int,
    width: int,
    height: int,
    blob: str | None = None,
    finish: str | None = None,
) -> bool:
    """The row is ready (False: there is no row, or ``blob``'s row is gone: one statement
    both checks and marks). ``finish``: the job of that kind keyed by the thumbnail's key is
    deleted, whatever the answer (on PostgreSQL in the same statement)."""
    params: dict[str, object] = {
        "b_key": key,
        "b_content_type": content_type,
        "b_size": size,
        "b_width": width,
        "b_height": height,
        "b_updated_at": utcnow(),
    }
    if blob is None:
        result = await conn.execute(_READY, params)
    elif finish is not None and conn.dialect.name == "postgresql":
        both = {**params, "b_blob": blob, "b_kind": finish}  # b_key: the job's key too
        return bool((await conn.execute(_READY_WHILE_BLOB_AND_FINISHED, both)).rowcount)
    else:
        result = await conn.execute(_READY_WHILE_BLOB, {**params, "b_blob": blob})
    if finish is not None:
        await jobs_sql.finish(conn, finish, key)
    return bool(result.rowcount)


def _ready(*, content_type: str, size: int, width: int, height: int) -> dict[str, object]:
    """The columns of a ready row, with its update time."""
    columns = ready_columns(content_type=content_type, size=size, width=width, height=height)
    return {**columns, "updated_at": utcnow()}


async def lock_status(conn: AsyncConnection, key: str) -> str | None:
    """The row's status, locked for the transaction (SQLite's writer lock does that); None
    when there is no row."""
    query = select(thumbnails.c.status).where(thumbnails.c.key == key)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return str(row[0]) if row is not None else None


async def add_ready(
    conn: AsyncConnection,
    key: str,
    sha256: str,
    params: str,
    *,
    content_type: str,
    size: int,
    width: int,
    height: int,
) -> None:
    """A new row, ready at once (the upload rendered it; see :func:`lock_status` first). The
    key leaves the deletion queue in the same transaction, as a new blob's does: a remover
    of the key (an earlier image with the same bytes, deleted) waits for this transaction and
    then finds the key live. A row another transaction inserted meanwhile (a request's render
    on PostgreSQL) is made ready instead."""
    await deletions.forget(conn, key)
    ready = _ready(content_type=content_type, size=size, width=width, height=height)
    values = dict(
        key=key, sha256=sha256, params=params, attempts=0, created_at=ready["updated_at"], **ready
    )
    if conn.dialect.name in UPSERT_DIALECTS:
        if not await insert_or_ignore(conn, thumbnails, values, ("key",)):
            await conn.execute(update(thumbnails).where(thumbnails.c.key == key).values(**ready))
        return
    await conn.execute(insert(thumbnails).values(**values))


async def attempts(conn: AsyncConnection, key: str) -> int | None:
    """Failed attempts so far (None when the row is gone)."""
    row = (await conn.execute(select(thumbnails.c.attempts).where(thumbnails.c.key == key))).first()
    return int(row[0]) if row is not None else None


async def record_failure(
    conn: AsyncConnection,
    key: str,
    *,
    attempts: int,
    status: str,
    error: str,
    next_attempt_at: datetime,
) -> None:
    await conn.execute(
        update(thumbnails)
        .where(thumbnails.c.key == key)
        .values(
            attempts=attempts,
            status=status,
            error=error,
            next_attempt_at=next_attempt_at,
            updated_at=utcnow(),
        )
    )


async def without_job(conn: AsyncConnection, params: str, job_kind: str, limit: int) -> list[str]:
    """Keys of rows still to render that have no job (written before thumbnails were jobs,
    or by an older process during a rolling upgrade)."""
    has_job = (
        select(jobs.c.key)
        .where(and_(jobs.c.kind == job_kind, jobs.c.key == thumbnails.c.key))
        .exists()
    )
    rows = await conn.execute(
        select(thumbnails.c.key)
        .where(and_(thumbnails.c.status.in_(RETRIED), thumbnails.c.params == params, ~has_job))
        .limit(limit)
    )
    return [row[0] for row in rows]


async def counts(conn: AsyncConnection) -> dict[str, int]:
    """Rows by status (every process's: for health and metrics)."""
    rows = await conn.execute(
        select(thumbnails.c.status, func.count()).group_by(thumbnails.c.status)
    )
    return {str(status): int(count) for status, count in rows}
