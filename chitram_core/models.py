"""Frozen value objects: what the SDK returns and what the HTTP API renders."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import attrs

HealthStatus = Literal["healthy", "degraded", "unhealthy"]


@attrs.frozen(kw_only=True)
class User:
    id: str
    email: str
    is_active: bool
    created_at: datetime
    provider: str = "local"
    supabase_id: str | None = None


@attrs.frozen(kw_only=True)
class Principal:
    """Who is calling: the authenticated user behind a token."""

    user_id: str
    email: str
    provider: str = "local"
    token_id: str | None = None
    scopes: frozenset[str] | None = None
    """What an API token allows (``images:read`` ...); None for a signed-in session, which may
    do everything its user may."""
    api_token_id: str | None = None
    """The API token the caller used, if any."""


@attrs.frozen(kw_only=True)
class Usage:
    """What a user's images take, and their limits (None: no limit)."""

    bytes: int
    images: int
    quota_bytes: int | None = None
    quota_images: int | None = None


@attrs.frozen(kw_only=True)
class ApiToken:
    """A personal API token as listed: never its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None


@attrs.frozen(kw_only=True)
class CreatedToken(ApiToken):
    """A token just made: the only time its secret (``token``) is known."""

    token: str


@attrs.frozen(kw_only=True)
class Session:
    """What register / login / refresh return; renders as the v1 AuthResponse."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


@attrs.frozen(kw_only=True)
class Image:
    id: str
    filename: str
    content_type: str
    file_size: int
    width: int
    height: int
    sha256: str
    created_at: datetime
    owner_id: str | None = None
    thumbnail_ready: bool = False
    thumbnail_error: str | None = None
    delete_token: str | None = None
    blurhash: str | None = None
    dominant_color: str | None = None

    @property
    def url(self) -> str:
        return f"/api/v1/images/{self.id}/file"

    @property
    def thumbnail_url(self) -> str:
        return f"/api/v1/images/{self.id}/thumbnail"

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'

    def variant_path(self, spec: str) -> str:
        return f"/api/v1/images/{self.id}/variants/{spec}"


@attrs.frozen(kw_only=True)
class Thumbnail:
    """A rendered thumbnail of an image: its bytes live in storage under ``key``."""

    image_id: str
    key: str
    content_type: str
    size: int
    sha256: str
    width: int
    height: int


@attrs.frozen(kw_only=True)
class Page:
    items: tuple[Image, ...]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class Check:
    status: HealthStatus
    latency_ms: float | None = None
    detail: str | None = None


@attrs.frozen(kw_only=True)
class HealthReport:
    status: HealthStatus
    version: str
    database: str
    storage: str
    cache: str
    rate_limiter: str
    upload_concurrency: dict[str, int]
    checks: dict[str, Check]


# tags ----------------------------------------------------------------------------------------

TagSource = Literal["user", "ai"]


@attrs.frozen(kw_only=True)
class Tag:
    id: str
    name: str
    category: str | None
    created_at: datetime


@attrs.frozen(kw_only=True)
class ImageTag:
    """A tag on one image: who put it there, and how sure a tagger was (None for users)."""

    name: str
    category: str | None
    source: TagSource
    confidence: int | None = None


@attrs.frozen(kw_only=True)
class PopularTag:
    name: str
    category: str | None
    count: int


@attrs.frozen
class SuggestedTag:
    """What a tagger proposes: a name, a confidence 0..100, an optional category."""

    name: str
    confidence: int = attrs.field(validator=[attrs.validators.ge(0), attrs.validators.le(100)])
    category: str | None = None


@attrs.frozen(kw_only=True)
class Variant:
    """A rendered variant of an image (docs/http-api.md#variants); its bytes are at ``key``."""

    image_id: str
    spec: str
    key: str
    content_type: str
    size: int
    width: int
    height: int
    negotiated: bool = False
    """True when the format came from the request's ``Accept`` (``auto``): ``Vary: Accept``."""

    @property
    def etag(self) -> str:
        import hashlib

        return '"' + hashlib.sha256(f"{self.key}:{self.size}".encode()).hexdigest() + '"'
