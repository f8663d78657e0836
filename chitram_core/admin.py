"""``Admin``: what an operator does to a deployment, as SDK calls.

Schema migrations, the sweep, moving every stored object to another store, and managing
users. The ``chitram`` command is a thin layer over it (it parses arguments and prints), and a
host can offer the same operations in its own tooling without reaching into ``chitram_core.db``
or ``chitram_core.storage``.

Two ways to get one:

- ``chitram.admin`` on an open :class:`~chitram_core.chitram.Chitram`: it borrows the instance's
  database and store, and can sweep.
- ``async with Admin.open(settings) as admin:`` opens only the database (and, for
  :meth:`Admin.migrate_storage`, the store, for that call) and disposes of whatever it opened.
  Migrations need this: a database behind the code's schema cannot open a whole ``Chitram``
  when automatic migration is off, and should not have to.

A mistake (an unknown user or revision, a taken email, a bad destination) raises a
:class:`~chitram_core.errors.ChitramError` subclass whose message says what to fix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import attrs
from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.auth import rules
from chitram_core.auth.passwords import HashLimiter, Passwords, hasher_for
from chitram_core.auth.users import to_user
from chitram_core.datadir import private_dir, private_sqlite
from chitram_core.db import Database, deletions, revisions
from chitram_core.db import users as user_sql
from chitram_core.db.tables import utcnow
from chitram_core.errors import (
    ConfigurationError,
    InvalidRequest,
    OperationUnavailable,
    UserNotFound,
    ValidationError,
    check_limit,
)
from chitram_core.models import Usage, User
from chitram_core.quotas import Quotas
from chitram_core.settings import Settings
from chitram_core.storage import Storage, StorageError, open_storage
from chitram_core.storage.migrate import MigrationReport, migrate_storage

__all__ = ["Admin", "MigrationReport", "SchemaState", "SweepReport", "open_database"]

Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: long operations report as they go (``total`` None when
not known yet)."""

MAX_USERS_PAGE = 1000


@attrs.frozen
class SweepReport:
    """What one sweep did (``Chitram.sweep``, ``chitram.admin.sweep``, ``chitram sweep``).

    Defined here, with the operation it reports on, so that this module need not import the
    composition root (``chitram_core.chitram``, which builds an ``Admin``)."""

    orphans_removed: int
    """Stored objects no row referenced, queued for removal."""
    pending_removed: int
    """Queued removals done (this sweep's and earlier failures')."""
    pending_left: int
    """Queued removals that failed again and stay queued."""
    thumbnails_made: int
    """Missing thumbnails rendered."""
    placeholders_made: int = 0
    """Images given their missing BlurHash and dominant colour."""
    uploads_expired: int = 0
    """Resumable uploads past ``CHITRAM_RESUMABLE_TTL`` removed, with their stored chunks."""
    revocations_expired: int = 0
    """Signed-out sessions whose tokens have all expired, forgotten."""


class Sweeper(Protocol):
    def __call__(
        self, *, older_than: float = ..., progress: Progress | None = ...
    ) -> Awaitable[SweepReport]: ...


@attrs.frozen
class SchemaState:
    """Where the database's schema is, against the migrations this version ships."""

    current: tuple[str, ...]
    """The revisions the database is at; empty when it was never migrated."""
    heads: tuple[str, ...]
    """The newest revisions this version of Chitram knows."""

    @property
    def at_head(self) -> bool:
        return bool(self.current) and set(self.current) == set(self.heads)


def open_database(settings: Settings) -> Database:
    """The database of ``settings``, its data dir made private first (0700, the SQLite file
    0600, before SQLite creates it): one place for what ``Chitram`` and ``Admin.open`` both do
    before they connect."""
    if settings.is_sqlite or settings.resolved_storage_url.startswith("file:"):
        private_dir(settings.data_dir)
    private_sqlite(settings.resolved_database_url)
    return Database(settings.resolved_database_url)


def _open_store(url: str, options: Mapping[str, Any], what: str) -> Storage:
    try:
        return open_storage(url, dict(options))
    except StorageError as exc:
        if what == "CHITRAM_STORAGE_URL":
            raise ConfigurationError(f"{what}: {exc}") from exc
        raise InvalidRequest(f"{what}: {exc}", field="dest_url") from exc


class Admin:
    """An operator's operations over one deployment's database and store."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        storage: Storage | None = None,
        sweep: Sweeper | None = None,
    ) -> None:
        """Over ``database`` (and ``storage`` when given), both owned by the caller: the admin
        closes neither. ``sweep`` is the open SDK's sweep; without it :meth:`sweep` is refused."""
        self.settings = settings
        self.database = database
        self._storage = storage
        self._sweep = sweep
        self._passwords: Passwords | None = None
        self._schema_checked = False

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings | None = None, *, migrate: bool = False
    ) -> AsyncIterator[Admin]:
        """An admin over ``settings``' database alone (default: ``Settings.from_env()``),
        disposed of on exit: for migrations, which must work on a database whose schema is
        behind, and for user management without starting the whole SDK.

        ``migrate``: first bring the schema to the head, as ``Chitram`` does on opening when
        ``settings.should_auto_migrate`` (pass that to behave the same). Otherwise the schema
        is left as it is, and the operations that read data refuse a schema that is not at the
        head (:class:`~chitram_core.errors.OperationUnavailable`) instead of failing in SQL.
        """
        settings = settings or Settings.from_env()
        database = open_database(settings)
        try:
            admin = cls(settings, database)
            if migrate:
                await admin.upgrade()
            yield admin
        finally:
            await database.dispose()

    # migrations -----------------------------------------------------------------------------

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` (``head``, an id, ``+N``): how a deployment that
        does not migrate itself at start (``CHITRAM_AUTO_MIGRATE``) is brought up to date.
        :class:`~chitram_core.errors.InvalidRevision` when the revision is unknown."""
        await revisions.upgrade(self.database, revision)

    async def downgrade(self, revision: str) -> None:
        """Revert migrations down to ``revision`` (an id, ``base``, ``-N``): to go back to an
        older Chitram. No default, as reverting drops data. :class:`InvalidRevision` when the
        revision is unknown or not below the current one."""
        await revisions.downgrade(self.database, revision)

    async def current(self) -> SchemaState:
        """Where the schema is and where this version's migrations end: whether an upgrade is
        due before this version can run on the database."""
        return SchemaState(
            current=await revisions.current(self.database), heads=revisions.heads(self.database)
        )

    # maintenance ----------------------------------------------------------------------------

    async def sweep(
        self, *, older_than: float = 3600.0, progress: Progress | None = None
    ) -> SweepReport:
        """Remove stored bytes no row references, retry queued removals and make missing
        thumbnails and placeholders (see ``Chitram.sweep``): what a crash or an outage left
        undone. Objects younger than ``older_than`` seconds are left alone (uploads in flight).

        Needs the whole SDK (the thumbnailer, the engine, the job runner): available on
        ``chitram.admin``; an admin from :meth:`open` raises
        :class:`~chitram_core.errors.OperationUnavailable`.
        """
        if self._sweep is None:
            raise OperationUnavailable(
                "sweep needs an open Chitram: use chitram.admin.sweep(), not Admin.open()"
            )
        if older_than < 0:
            raise ValidationError("older_than must not be negative", field="older_than")
        return await self._sweep(older_than=older_than, progress=progress)

    async def migrate_storage(
        self,
        dest_url: str,
        options: Mapping[str, Any] | None = None,
        *,
        concurrency: int = 4,
        trust_existing: bool = False,
        progress: Progress | None = None,
    ) -> MigrationReport:
        """Copy every stored object to the store at ``dest_url`` (with its fsspec ``options``),
        each verified by hash, so the deployment can then be pointed at it. Resumable: run it
        again after an interruption and what is already there and right is skipped.

        The report lists failed copies and objects the database references that the source
        lacks; ``report.ok`` is false when any copy failed. A destination that is the current
        store, or that cannot be opened, is :class:`~chitram_core.errors.InvalidRequest`,
        before anything is copied.
        """
        settings = self.settings
        if concurrency < 1:
            raise ValidationError("concurrency must be at least 1", field="concurrency")
        if dest_url.rstrip("/") == settings.resolved_storage_url.rstrip("/"):
            raise InvalidRequest(
                "the destination is the store CHITRAM_STORAGE_URL already names",
                field="dest_url",
            )
        opened: list[Storage] = []
        try:
            source = self._storage
            if source is None:
                source = _open_store(
                    settings.resolved_storage_url, settings.storage_options, "CHITRAM_STORAGE_URL"
                )
                opened.append(source)
            dest = _open_store(dest_url, options or {}, "DEST_URL")
            opened.append(dest)
            await self._require_schema()
            async with self.database.connect() as conn:
                referenced = await deletions.migration_keys(conn)
            return await migrate_storage(
                source,
                dest,
                referenced=referenced,
                concurrency=concurrency,
                trust_existing=trust_existing,
                progress=progress,
            )
        finally:
            for store in reversed(opened):
                await store.close()

    # users ----------------------------------------------------------------------------------

    async def list_users(
        self, *, limit: int = 100, offset: int = 0, active: bool | None = None
    ) -> list[User]:
        """Users oldest first, ``limit`` (1 to 1000) from ``offset``; only the enabled
        (``active=True``) or disabled (``False``) ones when asked."""
        check_limit(limit, high=MAX_USERS_PAGE)
        if offset < 0:
            raise ValidationError("offset must not be negative", field="offset")
        await self._require_schema()
        async with self.database.connect() as conn:
            rows = await user_sql.page(conn, limit=limit, offset=offset, active=active)
        return [to_user(row) for row in rows]

    async def create_user(self, email: str, password: str) -> User:
        """A local (password) user, enabled, under the same rules as registration (email
        syntax, password length and the common-password check when it is on): for a
        deployment with registration closed, or to make the first account.
        :class:`~chitram_core.errors.EmailExists`, ``InvalidEmail``, ``WeakPassword``."""
        cleaned = rules.clean_email(email)
        await rules.check_new_password(
            password,
            email=cleaned,
            common_check=self.settings.password_common_check,
            min_score=self.settings.password_min_score,
        )
        await self._require_schema()
        password_hash = await self._hasher().hash(password)
        async with self.database.transaction() as conn:
            row = await user_sql.create(
                conn,
                email=cleaned,
                email_normalized=rules.normalize_email(cleaned),
                provider="local",
                password_hash=password_hash,
            )
        return to_user(row)

    async def disable_user(self, user: str) -> User:
        """Disable the user with this id or email: logins, token refreshes and access tokens
        already issued are refused from now on (``UserInactive``), by every provider, and the
        user's refresh tokens are revoked. Their images stay. Undo with :meth:`enable_user`.
        :class:`~chitram_core.errors.UserNotFound` when there is no such user."""
        return await self._set_active(user, False)

    async def enable_user(self, user: str) -> User:
        """Enable a disabled user again (by id or email); they sign in afresh, as their old
        sessions were revoked. :class:`~chitram_core.errors.UserNotFound`."""
        return await self._set_active(user, True)

    async def set_quota(
        self, user: str, *, bytes: int | None = None, images: int | None = None
    ) -> Usage:
        """Give the user with this id or email their own quota (None for either: the
        deployment's default, ``CHITRAM_QUOTA_BYTES`` / ``CHITRAM_QUOTA_IMAGES``, applies; both
        None clears the user's own). Their usage and limits after the change.
        :class:`~chitram_core.errors.UserNotFound`."""
        await self._require_schema()
        async with self.database.connect() as conn:
            row = await self._find(conn, user)
        return await Quotas(self.settings, self.database).set_quota(
            row.id, bytes=bytes, images=images
        )

    async def usage(self, user: str) -> Usage:
        """What the user's (by id or email) images take, and their limits."""
        await self._require_schema()
        async with self.database.connect() as conn:
            row = await self._find(conn, user)
        return await Quotas(self.settings, self.database).usage(row.id)

    async def _set_active(self, user: str, active: bool) -> User:
        await self._require_schema()
        async with self.database.transaction() as conn:
            row = await self._find(conn, user)
            if bool(row.is_active) != active:
                await user_sql.set_active(conn, row.id, active, utcnow())
                row = await user_sql.by_id(conn, row.id)
        return to_user(row)

    async def _find(self, conn: AsyncConnection, user: str) -> Any:
        """The row of the user with id ``user``, else with email ``user``."""
        row = await user_sql.by_id(conn, user)
        if row is None and "@" in user:
            row = await user_sql.by_email(conn, rules.normalize_email(user))
        if row is None:
            raise UserNotFound(f"No user with id or email {user!r}", user=user)
        return row

    async def _require_schema(self) -> None:
        """Refuse, with what to do, to read or write data in a schema that is not at the head
        (checked once): an operation would otherwise fail half-way in SQL."""
        if self._schema_checked:
            return
        state = await self.current()
        if not state.at_head:
            raise OperationUnavailable(
                f"The database schema is at {', '.join(state.current) or 'no revision'}, not at "
                f"{', '.join(state.heads)}: run 'chitram db upgrade' (Admin.upgrade) first",
                current=list(state.current),
                heads=list(state.heads),
            )
        self._schema_checked = True

    def _hasher(self) -> Passwords:
        if self._passwords is None:
            settings = self.settings
            self._passwords = Passwords(
                hasher_for(settings.password_hash_profile),
                limiter=HashLimiter(settings.hash_concurrency, settings.hash_wait_timeout),
            )
        return self._passwords
