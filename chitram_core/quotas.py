"""Per-user quotas: bytes and images, the deployment's defaults or a user's own limits.

Two checks, one rule. :meth:`Quotas.check_declared` refuses, before a byte of a body is read,
an upload whose announced length (or one more image) would pass the user's quota: any ingest
source that knows its length up front (a request's ``Content-Length``, a resumable upload's
declared size, a fetched object's length) calls it. :meth:`Quotas.charge` is the authoritative
check, run inside the transaction that records the image row with the exact size: the user's
row is locked first, so two concurrent uploads of one user are counted one after the other
and cannot both pass. Usage is counted from the image rows (``db/quotas.py``), so deleting an
image frees its share with nothing else to update.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from chitram_core.db import Database
from chitram_core.db import quotas as quota_sql
from chitram_core.errors import QuotaExceeded, UserNotFound, ValidationError
from chitram_core.models import Usage
from chitram_core.settings import Settings


class Quotas:
    """``chitram.users``: usage and quotas of the users of one deployment."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.default_bytes = settings.quota_bytes
        self.default_images = settings.quota_images
        self.database = database

    async def usage(self, user_id: str) -> Usage:
        """What the user's images take, and the limits that apply to them."""
        async with self.database.connect() as conn:
            return await self._usage(conn, user_id)

    async def set_quota(
        self, user_id: str, *, bytes: int | None = None, images: int | None = None
    ) -> Usage:
        """Give the user their own limits (None: the deployment's default applies); both None
        removes the user's own limits. :class:`UserNotFound` when there is no such user."""
        for name, value in (("bytes", bytes), ("images", images)):
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ValidationError(f"The {name} quota must not be negative", field=name)
        async with self.database.transaction() as conn:
            if not await quota_sql.lock_user(conn, user_id):
                raise UserNotFound(f"No user with id {user_id!r}", user=user_id)
            await quota_sql.set_overrides(conn, user_id, bytes, images)
            return await self._usage(conn, user_id)

    async def check_declared(self, user_id: str | None, declared_length: int | None) -> None:
        """Refuse (:class:`QuotaExceeded`) an upload of ``declared_length`` bytes (None: not
        known yet, only the image count is checked) that would pass the user's quota, before
        its body is read. Not a guarantee (uploads in flight are not counted): the record's
        :meth:`charge` is."""
        if user_id is None:
            return
        async with self.database.connect() as conn:
            limits = await self._limits(conn, user_id)
            if limits == (None, None):
                return
            used = await quota_sql.usage(conn, user_id)
        _check(used, limits, declared_length or 0)

    async def charge(self, conn: AsyncConnection, user_id: str | None, size: int) -> None:
        """Inside the transaction that records an image of ``size`` bytes for ``user_id``:
        lock the user's row, count their usage and refuse (:class:`QuotaExceeded`, the
        transaction rolls back) if one more image of this size passes a limit."""
        if user_id is None:
            return
        limits = await self._limits(conn, user_id)
        if limits == (None, None):
            return
        await quota_sql.lock_user(conn, user_id)
        _check(await quota_sql.usage(conn, user_id), limits, size)

    async def _limits(self, conn: AsyncConnection, user_id: str) -> tuple[int | None, int | None]:
        own_bytes, own_images = await quota_sql.overrides(conn, user_id)
        return (
            own_bytes if own_bytes is not None else self.default_bytes,
            own_images if own_images is not None else self.default_images,
        )

    async def _usage(self, conn: AsyncConnection, user_id: str) -> Usage:
        quota_bytes, quota_images = await self._limits(conn, user_id)
        used_bytes, used_images = await quota_sql.usage(conn, user_id)
        return Usage(
            bytes=used_bytes,
            images=used_images,
            quota_bytes=quota_bytes,
            quota_images=quota_images,
        )


def _check(used: tuple[int, int], limits: tuple[int | None, int | None], size: int) -> None:
    used_bytes, used_images = used
    quota_bytes, quota_images = limits
    if quota_images is not None and used_images + 1 > quota_images:
        raise QuotaExceeded(
            f"Your quota of {quota_images} images is used up: delete some to upload more",
            quota_images=quota_images,
            images=used_images,
        )
    if quota_bytes is not None and used_bytes + size > quota_bytes:
        raise QuotaExceeded(
            f"This upload of {size} bytes would pass your quota of {quota_bytes} bytes "
            f"({used_bytes} used)",
            quota_bytes=quota_bytes,
            bytes=used_bytes,
            size=size,
        )
