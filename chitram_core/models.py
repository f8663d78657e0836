"""Frozen value objects: what the SDK returns and what the HTTP API renders."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import attrs

HealthStatus = Literal["healthy", "degraded", "unhealthy"]


@attrs.frozen(kw_only=True)
class User:
    """An account: who can log in, through which provider."""

    id: str
    """The user's UUID."""
    email: str
    """The email address, as registered (the lookup key is case-folded)."""
    is_active: bool
    """False for an account that may not log in (e.g. an unconfirmed email)."""
    created_at: datetime
    """When the account was made (UTC)."""
    provider: str = "local"
    """The auth provider that owns the account: ``local``, ``supabase``, ..."""
    supabase_id: str | None = None
    """The Supabase user id, for an account linked to Supabase."""


@attrs.frozen(kw_only=True)
class Principal:
    """Who is calling: the authenticated user behind a token."""

    user_id: str
    """The caller's user id."""
    email: str
    """The caller's email address."""
    provider: str = "local"
    """The auth provider that issued the token."""
    token_id: str | None = None
    """The token's id (``jti``) when the provider gives one."""
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
    """The user the session belongs to."""
    access_token: str
    """A bearer token for ``Authorization: Bearer ...``."""
    refresh_token: str
    """Exchanged for a new session before the access token expires."""
    expires_in: int
    """Seconds until the access token expires."""
    token_type: str = "bearer"
    """Always ``bearer``."""


@attrs.frozen(kw_only=True)
class Image:
    """A stored image's record; renders as the v1 ``Image``."""

    id: str
    """The image's UUID."""
    filename: str
    """The uploaded file name, its extension matching the detected type."""
    content_type: str
    """The type detected from the bytes: ``image/jpeg``, ``image/png``, ..."""
    file_size: int
    """Size of the stored bytes."""
    width: int
    """Width in pixels."""
    height: int
    """Height in pixels."""
    sha256: str
    """Hex SHA-256 of the stored bytes (identical uploads share them)."""
    created_at: datetime
    """When it was uploaded (UTC)."""
    owner_id: str | None = None
    """The uploader's user id; None for an anonymous upload."""
    thumbnail_ready: bool = False
    """Whether the thumbnail is rendered."""
    thumbnail_error: str | None = None
    """Why the thumbnail could not be made, when it could not."""
    delete_token: str | None = None
    """Only in an anonymous upload's answer: the token that deletes it."""
    blurhash: str | None = None
    """BlurHash placeholder (4x3 components); None until computed."""
    dominant_color: str | None = None
    """Placeholder colour ``#rrggbb``; None until computed."""

    @property
    def url(self) -> str:
        """The path its bytes are served at."""
        return f"/api/v1/images/{self.id}/file"

    @property
    def thumbnail_url(self) -> str:
        """The path its thumbnail is served at."""
        return f"/api/v1/images/{self.id}/thumbnail"

    @property
    def etag(self) -> str:
        """The strong ETag of its bytes (their SHA-256, quoted)."""
        return f'"{self.sha256}"'

    def variant_path(self, spec: str) -> str:
        """The path of its variant ``spec`` (e.g. ``w640``), before any signature."""
        return f"/api/v1/images/{self.id}/variants/{spec}"


@attrs.frozen(kw_only=True)
class Thumbnail:
    """A rendered thumbnail of an image: its bytes live in storage under ``key``."""

    image_id: str
    """The image it was made from."""
    key: str
    """Where its bytes are in storage."""
    content_type: str
    """Its type: ``image/jpeg``, ``image/webp`` or ``image/png``."""
    size: int
    """Size of its bytes."""
    sha256: str
    """Hex SHA-256 of its bytes."""
    width: int
    """Width in pixels."""
    height: int
    """Height in pixels."""


@attrs.frozen(kw_only=True)
class Page:
    """One page of a listing, newest first; renders as the v1 ``Page``."""

    items: tuple[Image, ...]
    """The images of this page."""
    next_cursor: str | None
    """Pass it as ``cursor`` for the next page; None on the last."""


@attrs.frozen(kw_only=True)
class Check:
    """One dependency's part of a health report."""

    status: HealthStatus
    """``healthy``, ``degraded`` or ``unhealthy``."""
    latency_ms: float | None = None
    """How long the check took, when it ran."""
    detail: str | None = None
    """What is wrong, when something is."""


@attrs.frozen(kw_only=True)
class HealthReport:
    """What ``Chitram.health()`` and ``GET /health`` report."""

    status: HealthStatus
    """The worst of the checks: ``healthy``, ``degraded`` or ``unhealthy``."""
    version: str
    """Chitram's version."""
    database: str
    """The database's state: ``connected`` or ``disconnected``."""
    storage: str
    """The store's state."""
    cache: str
    """The cache's state (``disabled`` when off)."""
    rate_limiter: str
    """The rate-limit backend's state."""
    upload_concurrency: dict[str, int]
    """Upload slots: in use, waiting and capacity."""
    checks: dict[str, Check]
    """Each dependency's check, by name."""
    image_formats: list[str] = attrs.field(factory=list)
    """The upload formats this installation decodes (``jpeg``, ``png``, ``gif``, ``webp``,
    ``avif``, and ``heif``/``jxl`` with their extras)."""


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
