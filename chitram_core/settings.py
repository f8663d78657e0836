"""Settings: one frozen attrs object, built from ``CHITRAM_*`` variables or by hand.

Invalid values are rejected at the edge with a message naming the variable, so a bad deployment
fails at start-up instead of at the first request.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

# The parser table and its helpers live in chitram_core/env_values.py and are reachable from
# here too: a setting with a syntax of its own adds ``_PARSERS["field"] = parser`` in either.
from chitram_core.env_values import (  # noqa: F401
    _PARSERS,
    RateLimit,
    _parse_bool,
    _parse_bytes,
    _parse_float,
    _parse_int,
    _parse_list,
    _parse_optional_bool,
    _parse_upper,
    absolute_http_url,
    settings_from_env,
)
from chitram_core.errors import ChitramError, ConfigurationError
from chitram_core.variant_spec import parse_spec

__all__ = [
    "DEFAULT_JWT_SECRET",
    "PASSWORD_HASH_PROFILES",
    "PUBLISHED_JWT_SECRETS",
    "RateLimit",
    "Settings",
    "absolute_http_url",
]

_log = logging.getLogger(__name__)

DEFAULT_JWT_SECRET = "chitram-development-secret-change-me-0123456789abcdef"
"""The development secret once printed in the source: published, so never signed or accepted."""
PUBLISHED_JWT_SECRETS = frozenset({DEFAULT_JWT_SECRET})

# testing kit. "fast": argon2id at minimal cost, for test suites only.
PASSWORD_HASH_PROFILES = ("default", "fast")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _not_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


@attrs.frozen(kw_only=True)
class Settings:
    """Everything a Chitram instance needs, frozen.

    Build it by hand (``Settings(data_dir=...)``) or from ``CHITRAM_*`` variables with
    :meth:`from_env`. Each field's docstring says what it does, its default and its unit; the
    documentation's settings reference is generated from them.
    """

    env: str = attrs.field(
        default="development", validator=attrs.validators.in_({"development", "production", "test"})
    )
    """`development`, `production` (refuses unsafe secrets) or `test`; default development."""
    data_dir: Path = attrs.field(default=Path("./chitram-data"), converter=Path)
    """Where the embedded defaults live, created if needed; default `./chitram-data`."""
    database_url: str | None = None
    """SQLAlchemy async URL; default SQLite at `<data dir>/chitram.db`."""
    storage_url: str | None = None
    """Any fsspec URL or a `chitram.storage` plugin's; default `<data dir>/images`."""
    storage_options: Mapping[str, Any] = attrs.field(factory=dict)
    """JSON object passed to the storage factory (s3fs options for s3); default {}."""
    cache_url: str = "memory://"
    """`memory://`, `redis://...`, a `chitram.cache` plugin's URL or `off`; default memory."""
    cache_ttl: float = attrs.field(default=300.0, validator=_positive)
    """Seconds an image's metadata stays cached; default 300 s."""
    cache_fail_open: bool = True
    """A cache or rate-limit outage lets requests through (else refused); default on."""
    rate_limit_url: str | None = None
    """A separate backend for rate-limit counters; default the cache URL."""
    auth_providers: tuple[str, ...] = attrs.field(
        default=("local",), converter=tuple, validator=attrs.validators.min_len(1)
    )
    """Ordered failover chain of auth providers, e.g. `supabase,local`; default local."""
    jwt_secret: str | None = None
    """HS256 key of local tokens and cookies; default a secret kept in the data dir."""
    jwt_issuer: str = "chitram"
    """`iss` of local access tokens (routes them to the local provider); default chitram."""
    access_token_ttl: int = attrs.field(default=1800, validator=_positive)
    """Access-token lifetime (`expires_in`); default 1800 s."""
    refresh_token_ttl: int = attrs.field(default=30 * 86400, validator=_positive)
    """Refresh-token lifetime; default 2592000 s (30 days)."""
    supabase_url: str | None = None
    """Supabase project URL, needed when `supabase` is in the chain; default unset."""
    supabase_key: str | None = None
    """The Supabase project API key for GoTrue calls; default unset."""
    supabase_jwt_secret: str | None = None
    """Verifies HS256 Supabase tokens locally, even in an outage; default unset."""
    supabase_jwks_url: str | None = None
    """JWKS of asymmetric Supabase tokens, cached 10 min; default unset."""
    supabase_password_fallback: bool = True
    """Keep a hash at Supabase logins for local login in outages; default on."""
    auth_timeout: float = attrs.field(default=5.0, validator=_positive)
    """Seconds per Supabase call (the local provider gets at least 10); default 5 s."""
    breaker_threshold: int = attrs.field(default=3, validator=_positive)
    """Unavailability failures in a row that open a provider's circuit; default 3."""
    breaker_cooldown: float = attrs.field(default=30.0, validator=_positive)
    """Seconds an open circuit waits before one trial call; default 30 s."""
    max_upload_bytes: int = attrs.field(default=5 * 1024 * 1024, validator=_positive)
    """Upload size limit (413 `FILE_TOO_LARGE`); default 5242880 bytes (5 MiB)."""
    max_resumable_bytes: int = attrs.field(default=200 * 1024 * 1024, validator=_positive)
    """Largest resumable upload (``Upload-Length``), refused at creation; 200 MiB, bytes."""
    resumable_ttl: int = attrs.field(default=86400, validator=_positive)
    """Seconds an unfinished resumable upload is kept after its creation; 86400 (one day)."""
    max_pixels: int = attrs.field(default=40_000_000, validator=_positive)
    """Width x height limit from the header (`IMAGE_TOO_LARGE`); default 40000000 px."""
    max_dimension: int = attrs.field(default=12_000, validator=_positive)
    """Limit per side, from the header; default 12000 px."""
    upload_rate_limit: RateLimit | None = RateLimit(10, 60)
    """Uploads per user (per address when anonymous), or off; default 10/minute."""
    auth_rate_limit: RateLimit | None = RateLimit(10, 60)
    """Register, login, reset per address and per email, or off; default 10/minute."""
    ai_tag_rate_limit: RateLimit | None = RateLimit(10, 60)
    """Calls to run the taggers on an image now, per user; default 10 a minute (off: none)."""
    upload_concurrency: int = attrs.field(default=10, validator=_positive)
    """Uploads processed at once per process; default 10."""
    upload_wait_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds an upload waits for a slot before 503; default 10 s."""
    upload_queue: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    """Uploads that may wait for a slot at once (0: never wait); default 10."""
    upload_reserved_slots: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    """Upload slots kept for users holding none; default a fifth of `upload_concurrency`."""
    upload_room_wait: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    """Seconds an upload finding the queue full waits for room; default 0.5 s."""
    allow_anonymous_uploads: bool = False
    """Allow uploads without a bearer token (they get a delete token); default off."""
    trusted_proxies: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """IPs or networks whose `X-Forwarded-For` is believed; default none."""
    strip_metadata: bool = True
    """Remove EXIF/XMP/text metadata from stored originals; default on."""
    thumbnail_size: int = attrs.field(
        default=300,
        validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(4096)),
    )
    """Thumbnail bounding box, 1..4096; default 300 px."""
    thumbnail_format: str = attrs.field(
        default="JPEG", validator=attrs.validators.in_({"JPEG", "WEBP", "PNG"})
    )
    """Thumbnail format: `JPEG`, `WEBP` or `PNG`; default JPEG."""
    thumbnail_quality: int = attrs.field(
        default=85,
        validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(100)),
    )
    """Thumbnail encoder quality, 1..100; default 85."""
    decode_timeout: float = attrs.field(default=15.0, validator=_positive)
    """Seconds one decode may take before its worker is killed; default 15 s."""
    thumbnail_workers: int = attrs.field(default=2, validator=_positive)
    """Thumbnail renders at once per process; default 2."""
    thumbnail_jobs_ahead: int = attrs.field(default=6, validator=attrs.validators.ge(0))
    """Thumbnail jobs a process claims ahead of its free render slots, so the next render
    never waits for a claim (handed back to the queue on shutdown); 0: claim only for free
    slots; default 6."""
    thumbnail_at_upload: bool = True
    """Render the thumbnail in the upload's own engine job; default on."""
    auto_migrate: bool | None = None
    """Migrate at start-up: true, false, or None (auto: only on SQLite); default auto."""
    web_ui: bool = True
    """Mount the browser UI in `create_app`; default on."""
    cookie_secure: bool | None = None
    """Web UI cookies' `Secure` flag; None (default) follows the request's scheme."""
    # social sign-in (OAuth through Supabase)
    oauth_providers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Social sign-in providers through Supabase, e.g. `github,google`; default none."""
    oauth_redirects: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Absolute URLs an API client may pass as OAuth `redirect_to`; default none."""

    @oauth_providers.validator
    def _check_oauth_providers(
        self, attribute: attrs.Attribute[Any], value: tuple[str, ...]
    ) -> None:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
                raise ValueError(f"oauth_providers: {name!r} is not a provider name like github")
        if value and "supabase" not in self.auth_providers:
            raise ValueError(
                "oauth_providers: social sign-in goes through Supabase; add supabase to the "
                "auth providers"
            )

    @oauth_redirects.validator
    def _check_oauth_redirects(
        self, attribute: attrs.Attribute[Any], value: tuple[str, ...]
    ) -> None:
        for url in value:
            if not absolute_http_url(url):
                raise ValueError(f"oauth_redirects: {url!r} is not an absolute http(s) URL")

    # hardening
    upload_idle_timeout: float = attrs.field(default=15.0, validator=_positive)
    """Seconds an upload body may send nothing before 408; default 15 s."""
    upload_timeout: float = attrs.field(default=120.0, validator=_positive)
    """Seconds the whole upload body may take before 408; default 120 s."""
    uploads_per_user: int = attrs.field(default=4, validator=_positive)
    """Uploads of one user (or address) in progress at once per process; default 4."""
    hash_concurrency: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    """Password hashes at once per provider and process; default the CPU count."""
    hash_wait_timeout: float = attrs.field(default=5.0, validator=_positive)
    """Seconds a login waits for a hashing slot before 503; default 5 s."""
    password_common_check: bool = True
    """Refuse passwords in the shipped common-password list; default on."""
    refresh_reuse_interval: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    """Seconds a rotated refresh token still returns its successor; default 10 s."""
    public_url: str | None = None
    """The URL people reach the app at, used for share links; default unset."""
    health_token: str | None = None
    """Bearer token that shows `/health`'s full report remotely; default unset."""
    # sign-in abuse
    login_guard: RateLimit | None = RateLimit(20, 900)
    """Wrong passwords for one email, from all clients, that put it under attack; 20/900s."""
    password_min_score: int = attrs.field(
        default=3, validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(4))
    )
    """Least zxcvbn strength score (0-4) a new password needs; default 3."""
    token_check_ttl: float = attrs.field(default=60.0, validator=_positive)
    """How long a provider's verdict on a token is remembered; default 60 seconds."""
    # testing kit
    password_hash_profile: str = attrs.field(default="default")
    """`default` argon2id costs, or `fast` for test suites only; default default."""

    @password_hash_profile.validator
    def _check_hash_profile(self, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in PASSWORD_HASH_PROFILES:
            raise ValueError(
                f"password_hash_profile must be one of {', '.join(PASSWORD_HASH_PROFILES)},"
                f" got {value!r}"
            )
        if value == "fast" and self.env == "production":
            raise ValueError("password_hash_profile 'fast' is for tests; refused in production")

    # image-work engine
    image_workers: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    """Image engine worker processes per server process; default the CPU count."""
    image_memory_budget: int = attrs.field(default=512 * 1024 * 1024, validator=_positive)
    """Worst-case decode memory reserved at once per process; default 512 MiB."""
    image_wait_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds an image job waits for memory and a worker before 503; default 10 s."""
    jpeg_max_scans: int = attrs.field(default=100, validator=_positive)
    """A JPEG with more scans is refused before any decode; default 100."""
    max_pixels_unstreamed: int = attrs.field(default=16_000_000, validator=_positive)
    """Pixel limit of formats decoded whole (WebP, HEIF, AVIF, JPEG XL); default 16000000 px."""
    max_frames: int = attrs.field(default=500, validator=_positive)
    """Frames an animated GIF, WebP or PNG may have, counted from the frame headers before any
    decode (`IMAGE_TOO_LARGE`); default 500."""
    max_animation_pixels: int = attrs.field(default=200_000_000, validator=_positive)
    """Width x height x frames limit of an animation, from the frame headers
    (`IMAGE_TOO_LARGE`); default 200000000."""
    # operations (logs, metrics)
    log_format: str = attrs.field(default="text", validator=attrs.validators.in_({"text", "json"}))
    """`text` or `json` (one object per line); default text."""
    log_level: str = attrs.field(
        default="INFO",
        validator=attrs.validators.in_({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}),
    )
    """`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`; default INFO."""
    metrics_address: str | None = None
    """`host:port` of a separate Prometheus `/metrics` listener; default unset (off)."""
    metrics_interval: float = attrs.field(default=15.0, validator=_positive)
    """Seconds between job counts for `chitram_jobs`; default 15 s."""
    access_log: bool = True
    """One access line per request; default on."""
    # serving (slow clients)
    header_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds a connection has to send a whole request head (``chitram serve``); default 10."""
    body_idle_timeout: float = attrs.field(default=15.0, validator=_positive)
    """Seconds a request body may go without a byte before the answer is 408; default 15."""
    max_connections: int = attrs.field(default=2048, validator=_positive)
    """Open connections per server process (``chitram serve``); default 2048."""
    # tags and auto-tagging
    taggers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Auto-tagging `chitram.taggers` plugins, e.g. `palette,openai`; default none (off)."""
    openai_base_url: str = "https://api.openai.com/v1"
    """Any OpenAI-compatible API; default `https://api.openai.com/v1`."""
    openai_api_key: str | None = None
    """Bearer key for the OpenAI-compatible API; default unset (no header)."""
    openai_model: str = "gpt-4o-mini"
    """The vision model the `openai` tagger asks; default gpt-4o-mini."""
    openai_timeout: float = attrs.field(default=30.0, validator=_positive)
    """Seconds per request to the model before it counts as unavailable; default 30 s."""
    tags_max_ai: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    """AI tags kept per image, the most confident; default 5."""
    tags_min_confidence: int = attrs.field(
        default=70,
        validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(100)),
    )
    """AI suggestions under this confidence (0..100) are dropped; default 70."""
    public_tags: bool = False
    """Tag listings show every user's tags to anyone (the old global listing); default false:
    each caller sees only the tags on their own images, anonymous callers none."""
    max_tags_per_image: int = attrs.field(default=50, validator=_positive)
    """Most tags one image may carry, user and AI tags together; default 50."""
    jobs_poll_interval: float = attrs.field(default=2.0, validator=_positive)
    """Seconds between the job runner's looks for due jobs; default 2 s."""
    jobs_max_backoff: float = attrs.field(default=300.0, validator=_positive)
    """Cap of a job's retry back-off while a tagger is unavailable; default 300 s."""
    jobs_concurrency: int = attrs.field(default=2, validator=_positive)
    """Background jobs (tagging) one process runs at once; thumbnails have their own; default 2."""
    run_jobs: bool = True
    """Run the durable background jobs in this process; false: only enqueue them (API processes
    beside `chitram worker`); default on."""
    shutdown_grace: float = attrs.field(default=30.0, validator=_positive)
    """Seconds a stopping process gives in-flight requests and jobs; default 30 s."""
    shutdown_drain: float = attrs.field(default=0.0, validator=_not_negative)
    """Seconds ``chitram serve`` keeps serving after SIGTERM while ``/health/ready`` answers 503
    (so a load balancer takes it out of rotation) before it stops accepting; default 0."""
    # upload by URL
    fetch_allow_ports: tuple[int, ...] = attrs.field(default=(80, 443), converter=tuple)
    """Ports a URL upload may connect to; default 80 and 443."""
    fetch_allow_networks: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """CIDRs URL uploads may reach although private or reserved (``10.1.0.0/16``); default none."""
    fetch_timeout: float = attrs.field(default=20.0, validator=_positive)
    """Seconds a URL upload may take to fetch, in all (connecting: at most 5 of them)."""
    # moderation gate
    moderators: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Moderators (plugin group ``chitram.moderators``) every upload must pass; default none."""
    moderation_url: str | None = None
    """Where the ``http`` moderator POSTs the image; required when it is on."""
    moderation_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds the ``http`` moderator waits for an answer; default 10."""
    moderation_fail_open: bool = False
    """Accept uploads while a moderator is down (default: refuse them with 503)."""
    # variants and placeholders
    variant_presets: tuple[str, ...] = attrs.field(default=("w320", "w640", "w1280", "w1920"))
    """Variant specs served without a signature; default w320, w640, w1280, w1920."""
    variant_keys: tuple[str, ...] = attrs.field(default=(), repr=False)
    """HMAC keys of signed variant URLs, the first signs; default one derived key."""
    variant_max_renders: int = attrs.field(default=8, validator=_positive)
    """Variant renders in flight per process, then 503; default 8."""
    placeholders: bool = True
    """Compute `blurhash` and `dominant_color` at upload; default on."""
    # quotas
    quota_bytes: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    """Bytes each user's images may take in all, each image its own size; default none."""
    quota_images: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    """How many images each user may keep; default none (no limit)."""

    @variant_presets.validator
    def _check_presets(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        for item in value:
            try:
                parse_spec(item)
            except ChitramError as exc:
                raise ValueError(f"variant_presets: {item!r}: {exc.message}") from None

    @fetch_allow_networks.validator
    def _check_networks(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        for item in value:
            _parse_network(item)

    @trusted_proxies.validator
    def _check_proxies(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        for item in value:
            ipaddress.ip_network(item, strict=False)

    # Derived values -----------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        """``database_url``, or the SQLite file in the data dir when it is unset."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chitram.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        """``storage_url``, or the ``images`` folder of the data dir when it is unset."""
        if self.storage_url:
            return self.storage_url
        return (self.data_dir / "images").resolve().as_uri()

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is SQLite."""
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        """``auto_migrate``, or (when it is None) whether the database is SQLite."""
        return self.auto_migrate if self.auto_migrate is not None else self.is_sqlite

    @property
    def resolved_rate_limit_url(self) -> str:
        """``rate_limit_url``, else the cache URL (``memory://`` when the cache is off)."""
        if self.rate_limit_url:
            return self.rate_limit_url
        return self.cache_url if self.cache_url != "off" else "memory://"

    def check_production(self) -> None:
        """Refuse settings that are unsafe in production, saying why."""
        if self.env != "production":
            return
        problems = []
        if self.jwt_secret is None:
            problems.append(
                "CHITRAM_JWT_SECRET is not set; every process must share one random secret"
            )
        elif self.jwt_secret in PUBLISHED_JWT_SECRETS:
            problems.append("CHITRAM_JWT_SECRET is the published development secret")
        elif len(self.jwt_secret) < 32:
            problems.append("CHITRAM_JWT_SECRET must be at least 32 characters in production")
        if problems:
            raise ConfigurationError("Refusing to start in production: " + "; ".join(problems))

    def with_jwt_secret(self) -> Settings:
        """These settings with a usable ``jwt_secret``: the configured one, else the one kept in
        ``<data dir>/secret`` (made once, mode 0600). The published development secret is never
        used: production refuses it, elsewhere it is replaced by the kept secret, with a warning.
        """
        if self.jwt_secret is not None and self.jwt_secret not in PUBLISHED_JWT_SECRETS:
            return self
        if self.jwt_secret is not None:
            if self.env == "production":
                self.check_production()
            _log.warning(
                "CHITRAM_JWT_SECRET is the published development secret; it is ignored and "
                "the secret kept in %s is used instead",
                self.data_dir / "secret",
            )
        from chitram_core.datadir import kept_secret

        return attrs.evolve(self, jwt_secret=kept_secret(self.data_dir))

    @property
    def reserved_upload_slots(self) -> int:
        """``upload_reserved_slots``, or its default: a fifth of ``upload_concurrency``."""
        if self.upload_reserved_slots is not None:
            return self.upload_reserved_slots
        return self.upload_concurrency // 5

    @property
    def signing_secret(self) -> str:
        """The JWT secret, after :meth:`with_jwt_secret` (never the published one)."""
        if self.jwt_secret is None or self.jwt_secret in PUBLISHED_JWT_SECRETS:
            raise ConfigurationError("No usable JWT secret: call Settings.with_jwt_secret() first")
        return self.jwt_secret

    # Environment --------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``CHITRAM_*`` variables; a bad value names its variable.

        Each variable is ``CHITRAM_`` and a field's name in capitals; one not set keeps the
        field's default, and ``overrides`` win over the environment.
        """
        env = os.environ if environ is None else environ
        settings: Settings = settings_from_env(cls, env, overrides)
        return settings


def parse_optional_bytes(raw: str) -> int | None:
    """A byte count (``1G``, ``512MiB``, ``1000``), or ``none``/empty for no limit."""
    return None if raw.strip().lower() in {"", "none"} else _parse_bytes(raw)


# quotas
_PARSERS["quota_bytes"] = parse_optional_bytes
_PARSERS["quota_images"] = lambda raw: (
    None if raw.strip().lower() in {"", "none"} else _parse_int(raw)
)
_PARSERS["max_resumable_bytes"] = _parse_bytes
_PARSERS["login_guard"] = RateLimit.parse


# upload by URL, moderation
def _parse_port(raw: str) -> int:
    port = _parse_int(raw)
    if not 1 <= port <= 65535:
        raise ValueError(f"{raw!r} is not a port (1 to 65535)")
    return port


def _parse_network(raw: str) -> str:
    try:
        return str(ipaddress.ip_network(raw, strict=False))
    except ValueError:
        raise ValueError(f"{raw!r} is not a network (CIDR, e.g. 10.0.0.0/8)") from None


_PARSERS["fetch_allow_ports"] = lambda raw: tuple(_parse_port(p) for p in _parse_list(raw))
_PARSERS["fetch_allow_networks"] = lambda raw: tuple(_parse_network(n) for n in _parse_list(raw))
_PARSERS["moderators"] = lambda raw: tuple(m.lower() for m in _parse_list(raw))
_PARSERS["ai_tag_rate_limit"] = RateLimit.parse
