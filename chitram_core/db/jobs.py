"""SQL for the durable job table (``chitram_core.jobs``): enqueue, find due, claim, settle."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from chitram_core.db.tables import jobs, utcnow


async def enqueue(conn: AsyncConnection, kind: str, key: str, when: datetime) -> None:
    """A pending job, due at ``when``; an existing pending or failed one is made due again,
    a running one is left to finish."""
    now = utcnow()
    reset = await conn.execute(
        update(jobs)
        .where(and_(jobs.c.kind == kind, jobs.c.key == key, jobs.c.state != "running"))
        .values(state="pending", attempts=0, next_attempt_at=when, error=None, updated_at=now)
    )
    if reset.rowcount:
        return
    present = (
        await conn.execute(select(jobs.c.state).where(and_(jobs.c.kind == kind, jobs.c.key == key)))
    ).first()
    if present is None:
        await conn.execute(
            insert(jobs).values(
                kind=kind,
                key=key,
                state="pending",
                attempts=0,
                next_attempt_at=when,
                created_at=now,
                updated_at=now,
            )
        )


def _claimable(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    return or_(
        and_(jobs.c.state == "pending", jobs.c.next_attempt_at <= now),
        and_(jobs.c.state == "running", jobs.c.lease_until < now),
    )


async def due(
    conn: AsyncConnection, kinds: Sequence[str], now: datetime, limit: int
) -> list[tuple[str, str]]:
    """Jobs that may be claimed now: pending and due, or running with an expired lease
    (their worker died). Oldest due first."""
    rows = await conn.execute(
        select(jobs.c.kind, jobs.c.key)
        .where(and_(jobs.c.kind.in_(kinds), _claimable(now)))
        .order_by(jobs.c.next_attempt_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


async def claim(
    conn: AsyncConnection, kind: str, key: str, now: datetime, lease_until: datetime
) -> int | None:
    """Take the job if it is still claimable (a conditional UPDATE: exactly one of several
    racing workers wins); its attempt number, or None."""
    taken = await conn.execute(
        update(jobs)
        .where(and_(jobs.c.kind == kind, jobs.c.key == key, _claimable(now)))
        .values(
            state="running",
            attempts=jobs.c.attempts + 1,
            lease_until=lease_until,
            updated_at=now,
        )
    )
    if not taken.rowcount:
        return None
    row = (
        await conn.execute(
            select(jobs.c.attempts).where(and_(jobs.c.kind == kind, jobs.c.key == key))
        )
    ).first()
    return int(row[0]) if row is not None else None


def _claim_skip_locked() -> Any:
    """PostgreSQL's claim as one statement, built once (with bound parameters): MATERIALIZED,
    so the pick runs once and its LIMIT and row locks apply as written."""
    now: BindParameter[datetime] = bindparam("c_now", type_=jobs.c.updated_at.type)
    kind = bindparam("c_kind", type_=jobs.c.kind.type)
    picked = (
        select(jobs.c.key)
        .where(and_(jobs.c.kind == kind, _claimable(now)))
        .order_by(jobs.c.next_attempt_at)
        .limit(bindparam("c_limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    return (
        update(jobs)
        .where(and_(jobs.c.kind == kind, jobs.c.key == picked.c.key, _claimable(now)))
        .values(
            state="running",
            attempts=jobs.c.attempts + 1,
            lease_until=bindparam("c_lease_until", type_=jobs.c.lease_until.type),
            updated_at=now,
        )
        .returning(jobs.c.key, jobs.c.attempts, jobs.c.next_attempt_at)
    )


_CLAIM_SKIP_LOCKED = _claim_skip_locked()


async def claim_due(
    conn: AsyncConnection, kind: str, now: datetime, lease_until: datetime, limit: int
) -> list[tuple[str, int]]:
    """Claim up to ``limit`` of ``kind``'s claimable jobs at once, oldest due first; the claimed
    keys with their attempt numbers. Call it in a write transaction, or
    :meth:`~chitram_core.db.Database.one_statement`.

    On PostgreSQL it is one statement: the rows are picked ``FOR UPDATE SKIP LOCKED`` (workers
    claiming at the same time take disjoint jobs without waiting for each other's row locks)
    and marked running by the same ``UPDATE … RETURNING``. On SQLite the write transaction
    (``BEGIN IMMEDIATE``) already admits one claimer at a time. Either way the UPDATE repeats
    the claimable condition, so a job claimed since the pick is never taken twice.
    """
    if limit <= 0:
        return []
    if conn.dialect.name == "postgresql":
        rows = await conn.execute(
            _CLAIM_SKIP_LOCKED,
            {"c_kind": kind, "c_now": now, "c_lease_until": lease_until, "c_limit": limit},
        )
        return [(r[0], int(r[1])) for r in sorted(rows, key=lambda r: (r[2], r[0]))]
    pick = (
        select(jobs.c.key)
        .where(and_(jobs.c.kind == kind, _claimable(now)))
        .order_by(jobs.c.next_attempt_at)
        .limit(limit)
    )
    keys = [r[0] for r in await conn.execute(pick)]
    if not keys:
        return []
    await conn.execute(
        update(jobs)
        .where(and_(jobs.c.kind == kind, jobs.c.key.in_(keys), _claimable(now)))
        .values(
            state="running",
            attempts=jobs.c.attempts + 1,
            lease_until=lease_until,
            updated_at=now,
        )
    )
    rows = await conn.execute(
        select(jobs.c.key, jobs.c.attempts).where(
            and_(
                jobs.c.kind == kind,
                jobs.c.key.in_(keys),
                jobs.c.state == "running",  # ours: the picked rows are locked by this transaction
            )
        )
    )
    claimed = {r[0]: int(r[1]) for r in rows}
    return [(key, claimed[key]) for key in keys if key in claimed]


async def release(conn: AsyncConnection, kind: str, keys: Sequence[str], now: datetime) -> None:
    """Hand claimed jobs that never started back to the queue: pending again, due as they
    were, the lease dropped and the claim's attempt not counted."""
    if keys:
        await conn.execute(
            update(jobs)
            .where(and_(jobs.c.kind == kind, jobs.c.key.in_(keys), jobs.c.state == "running"))
            .values(
                state="pending",
                lease_until=None,
                attempts=jobs.c.attempts - 1,
                updated_at=now,
            )
        )


async def insert_missing(
    conn: AsyncConnection, kind: str, keys: Sequence[str], when: datetime
) -> int:
    """Pending jobs for those of ``keys`` that have no row (an existing job of any state is
    left alone); how many went in. Safe against a concurrent caller inserting the same."""
    if not keys:
        return 0
    now = utcnow()
    rows = [
        dict(
            kind=kind,
            key=key,
            state="pending",
            attempts=0,
            next_attempt_at=when,
            created_at=now,
            updated_at=now,
        )
        for key in keys
    ]
    if conn.dialect.name in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        added = 0
        for row in rows:  # one statement each: rowcount is per row on every driver
            statement = dialect_insert(jobs).values(**row)
            result = await conn.execute(
                statement.on_conflict_do_nothing(index_elements=["kind", "key"])
            )
            added += max(result.rowcount, 0)
        return added
    present = {
        r[0]
        for r in await conn.execute(
            select(jobs.c.key).where(and_(jobs.c.kind == kind, jobs.c.key.in_(keys)))
        )
    }
    missing = [row for row in rows if row["key"] not in present]
    if missing:
        await conn.execute(insert(jobs), missing)
    return len(missing)


async def renew(
    conn: AsyncConnection, kind: str, keys: Sequence[str], lease_until: datetime
) -> None:
    """Extend the lease of running jobs (their worker is alive and still at them)."""
    if keys:
        await conn.execute(
            update(jobs)
            .where(and_(jobs.c.kind == kind, jobs.c.key.in_(keys), jobs.c.state == "running"))
            .values(lease_until=lease_until)
        )


FINISH = delete(jobs).where(
    and_(jobs.c.kind == bindparam("b_kind"), jobs.c.key == bindparam("b_key"))
)
"""The job ``b_kind``/``b_key`` is done (its row deleted). Built once: a job finishes per job
run, and building the statement costs more than running it. The names are not column names:
as a WITH of an UPDATE (:func:`chitram_core.db.thumbnails.mark_ready`) a parameter named like
a column would become a SET."""


async def finish(conn: AsyncConnection, kind: str, key: str) -> None:
    await conn.execute(FINISH, {"b_kind": kind, "b_key": key})


async def settle(
    conn: AsyncConnection,
    kind: str,
    key: str,
    *,
    state: str,
    next_attempt_at: datetime,
    error: str | None,
    attempts_delta: int = 0,
) -> None:
    """Back to ``pending`` (retry at ``next_attempt_at``) or ``failed``; the lease is dropped."""
    await conn.execute(
        update(jobs)
        .where(and_(jobs.c.kind == kind, jobs.c.key == key, jobs.c.state == "running"))
        .values(
            state=state,
            next_attempt_at=next_attempt_at,
            lease_until=None,
            error=error,
            attempts=jobs.c.attempts + attempts_delta,
            updated_at=utcnow(),
        )
    )


async def counts(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """Jobs by (kind, state), for health and metrics."""
    rows = await conn.execute(
        select(jobs.c.kind, jobs.c.state, func.count()).group_by(jobs.c.kind, jobs.c.state)
    )
    return {(r[0], r[1]): int(r[2]) for r in rows}


async def get(conn: AsyncConnection, kind: str, key: str) -> dict[str, object] | None:
    row = (
        (await conn.execute(select(jobs).where(and_(jobs.c.kind == kind, jobs.c.key == key))))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None
