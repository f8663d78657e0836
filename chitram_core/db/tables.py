"""SQLAlchemy tables: the database is the source of truth for what exists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def ready_columns(*, content_type: str, size: int, width: int, height: int) -> dict[str, object]:
    """The columns of a rendered row (a thumbnail's, a variant's) once it is ready."""
    return dict(
        status="ready", error=None, content_type=content_type, size=size, width=width, height=height
    )


users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False),
    # NFKC + lower-cased email (not case-folded; re-keyed by 0003): the unique key
    Column("email_normalized", String(320), nullable=False, unique=True),
    Column("password_hash", Text, nullable=True),
    Column("provider", String(32), nullable=False, default="local"),
    Column("supabase_id", String(64), nullable=True, unique=True),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("family_id", String(36), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

# Supabase sessions signed out here (0003): the SHA-256 of the session id (or of the token when
# it names no session); access tokens of these sessions are refused until ``expires_at``, when
# the sweep deletes the row.
revoked_sessions = Table(
    "revoked_sessions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("storage_key", String(512), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("refcount", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    # placeholders (0002_variants); NULL until computed (upload, or the sweep)
    Column("blurhash", String(64), nullable=True),
    Column("dominant_color", String(7), nullable=True),
)

images = Table(
    "images",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner_id", String(36), ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("filename", String(1024), nullable=False),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("delete_token_hash", String(64), nullable=True),
    Index("ix_images_owner_created", "owner_id", "created_at", "id"),
)

# One row per (content, thumbnail parameters): identical images share their thumbnail. The row is
# the durable job: "pending" survives a crash and is picked up by the sweep or the first request.
thumbnails = Table(
    "thumbnails",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False, index=True),
    Column("params", String(64), nullable=False),
    Column("status", String(16), nullable=False, default="pending"),  # pending|ready|stalled|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),
    Column("content_type", String(64), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

# Storage objects whose rows are gone but whose bytes could not be removed yet.
pending_deletions = Table(
    "pending_deletions",
    metadata,
    Column("storage_key", String(512), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
)

# tags. ``tags.image_count`` is kept by triggers on ``image_tags`` (see migration
# 0002_tags), so popular tags are an index walk and a cascade delete of an image keeps counts.
tags = Table(
    "tags",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(50), nullable=False, unique=True),
    Column("category", String(20), nullable=True),
    Column("image_count", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)
# Most used first, ties by name: the popular query reads this index in order and stops.
Index("ix_tags_popular", tags.c.image_count.desc(), tags.c.name)

image_tags = Table(
    "image_tags",
    metadata,
    Column(
        "image_id",
        String(36),
        ForeignKey("images.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag_id", String(36), ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Column("source", String(8), nullable=False, default="user"),  # user|ai
    Column("confidence", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Index("ix_image_tags_tag", "tag_id", "image_id"),
)

# durable jobs (chitram_core/jobs). One row per (kind, key) still to do; a finished job's
# row is deleted. "running" rows carry a lease: a crashed worker's job is claimed again after it.
jobs = Table(
    "jobs",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("state", String(16), nullable=False, default="pending"),  # pending|running|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False, default=utcnow),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    Index("ix_jobs_due", "state", "next_attempt_at"),
)

# variants (0002_variants). One row per (content, resolved spec): identical images
# share their variants. ``status`` is "rendering" while one process renders it (``claimed_at``
# says since when, so a crashed renderer's claim goes stale), then "ready" or "failed".
variants = Table(
    "variants",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("sha256", String(64), ForeignKey("blobs.sha256"), nullable=False, index=True),
    Column("spec", String(64), nullable=False),
    Column("status", String(16), nullable=False, default="rendering"),
    Column("claimed_at", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),
    Column("content_type", String(64), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

# quotas and API tokens (0005_quotas_tokens). A user's own limits, when an operator set any;
# without a row (or with a NULL column) the deployment's defaults apply. Usage is not kept
# here: it is counted from the user's image rows (see ``db/quotas.py``).
user_quotas = Table(
    "user_quotas",
    metadata,
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("quota_bytes", BigInteger, nullable=True),
    Column("quota_images", BigInteger, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

# Personal API tokens: only a keyed hash of the secret is kept (see ``auth/api_tokens.py``).
# Revoking deletes the row. ``scopes`` is space-separated.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("expires_at", UTCDateTime, nullable=True),
    Index("ix_api_tokens_user", "user_id", "created_at"),
)

# resumable uploads (0004_resumable_uploads). ``received`` (the offset) moves only once the
# chunk that brings it is stored; each stored chunk is one ``resumable_parts`` row naming its
# object, so any process can take the next chunk. ``image_id`` is set together with the last
# chunk's part, once the image is made.
resumable_uploads = Table(
    "resumable_uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("length", BigInteger, nullable=False),
    Column("received", BigInteger, nullable=False, default=0),
    Column("filename", String(1024), nullable=True),
    Column("image_id", String(36), nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

resumable_parts = Table(
    "resumable_parts",
    metadata,
    Column(
        "upload_id",
        String(32),
        ForeignKey("resumable_uploads.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("start", BigInteger, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("storage_key", String(512), nullable=False),
)
