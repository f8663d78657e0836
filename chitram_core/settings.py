"""Settings: one frozen attrs object, built from ``CHITRAM_*`` variables or by hand.

Invalid values are rejected at the edge with a message naming the variable, so a bad deployment
fails at start-up instead of at the first request.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from chitram_core.errors import ChitramError, ConfigurationError
from chitram_core.variant_spec import parse_spec

_log = logging.getLogger(__name__)

DEFAULT_JWT_SECRET = "chitram-development-secret-change-me-0123456789abcdef"
"""The development secret once printed in the source: published, so never signed or accepted."""
PUBLISHED_JWT_SECRETS = frozenset({DEFAULT_JWT_SECRET})

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# testing kit. "fast": argon2id at minimal cost, for test suites only.
PASSWORD_HASH_PROFILES = ("default", "fast")


@attrs.frozen
class RateLimit:
    """``limit`` events per ``period`` seconds, checked over a sliding window."""

    limit: int
    period: int

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """Parse ``"10/minute"``, ``"5/30s"`` or ``"off"``; None means disabled."""
        value = text.strip().lower()
        if value in {"off", "none", "0", "false", "disabled"}:
            return None
        m = re.fullmatch(r"(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day|s|m|h|d)s?", value)
        if not m:
            raise ValueError(f"expected '<count>/<second|minute|hour|day>' or 'off', got {text!r}")
        count, mult, unit = int(m.group(1)), m.group(2), m.group(3)
        unit = {"s": "second", "m": "minute", "h": "hour", "d": "day"}.get(unit, unit)
        period = _PERIODS[unit] * (int(mult) if mult else 1)
        if count < 1 or period < 1:
            raise ValueError(f"a rate limit needs a positive count and period, got {text!r}")
        return cls(limit=count, period=period)

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class Settings:
    """Everything a Chitram instance needs; see docs/operations.md for each variable."""

    env: str = attrs.field(
        default="development", validator=attrs.validators.in_({"development", "production", "test"})
    )
    data_dir: Path = attrs.field(default=Path("./chitram-data"), converter=Path)
    database_url: str | None = None
    storage_url: str | None = None
    storage_options: Mapping[str, Any] = attrs.field(factory=dict)
    cache_url: str = "memory://"
    cache_ttl: float = attrs.field(default=300.0, validator=_positive)
    cache_fail_open: bool = True
    rate_limit_url: str | None = None
    auth_providers: tuple[str, ...] = attrs.field(
        default=("local",), converter=tuple, validator=attrs.validators.min_len(1)
    )
    jwt_secret: str | None = None
    jwt_issuer: str = "chitram"
    access_token_ttl: int = attrs.field(default=1800, validator=_positive)
    refresh_token_ttl: int = attrs.field(default=30 * 86400, validator=_positive)
    supabase_url: str | None = None
    supabase_key: str | None = None
    supabase_jwt_secret: str | None = None
    supabase_jwks_url: str | None = None
    supabase_password_fallback: bool = True
    auth_timeout: float = attrs.field(default=5.0, validator=_positive)
    breaker_threshold: int = attrs.field(default=3, validator=_positive)
    breaker_cooldown: float = attrs.field(default=30.0, validator=_positive)
    max_upload_bytes: int = attrs.field(default=5 * 1024 * 1024, validator=_positive)
    max_pixels: int = attrs.field(default=40_000_000, validator=_positive)
    max_dimension: int = attrs.field(default=12_000, validator=_positive)
    upload_rate_limit: RateLimit | None = RateLimit(10, 60)
    auth_rate_limit: RateLimit | None = RateLimit(10, 60)
    upload_concurrency: int = attrs.field(default=10, validator=_positive)
    upload_wait_timeout: float = attrs.field(default=10.0, validator=_positive)
    upload_queue: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    upload_room_wait: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    allow_anonymous_uploads: bool = False
    trusted_proxies: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    strip_metadata: bool = True
    thumbnail_size: int = attrs.field(
        default=300,
        validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(4096)),
    )
    thumbnail_format: str = attrs.field(
        default="JPEG", validator=attrs.validators.in_({"JPEG", "WEBP", "PNG"})
    )
    thumbnail_quality: int = attrs.field(
        default=85,
        validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(100)),
    )
    decode_timeout: float = attrs.field(default=15.0, validator=_positive)
    thumbnail_workers: int = attrs.field(default=2, validator=_positive)
    thumbnail_at_upload: bool = True
    auto_migrate: bool | None = None
    web_ui: bool = True
    cookie_secure: bool | None = None
    # social sign-in (OAuth through Supabase)
    oauth_providers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    oauth_redirects: tuple[str, ...] = attrs.field(default=(), converter=tuple)

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
    upload_timeout: float = attrs.field(default=120.0, validator=_positive)
    uploads_per_user: int = attrs.field(default=4, validator=_positive)
    hash_concurrency: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    hash_wait_timeout: float = attrs.field(default=5.0, validator=_positive)
    password_common_check: bool = True
    refresh_reuse_interval: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    public_url: str | None = None
    health_token: str | None = None
    # testing kit
    password_hash_profile: str = attrs.field(default="default")

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
    image_memory_budget: int = attrs.field(default=512 * 1024 * 1024, validator=_positive)
    image_wait_timeout: float = attrs.field(default=10.0, validator=_positive)
    jpeg_max_scans: int = attrs.field(default=100, validator=_positive)
    max_pixels_unstreamed: int = attrs.field(default=16_000_000, validator=_positive)
    # operations (logs, metrics)
    log_format: str = attrs.field(default="text", validator=attrs.validators.in_({"text", "json"}))
    log_level: str = attrs.field(
        default="INFO",
        validator=attrs.validators.in_({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}),
    )
    metrics_address: str | None = None
    metrics_interval: float = attrs.field(default=15.0, validator=_positive)
    access_log: bool = True
    # serving (slow clients)
    header_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds a connection has to send a whole request head (``chitram serve``); default 10."""
    body_idle_timeout: float = attrs.field(default=15.0, validator=_positive)
    """Seconds a request body may go without a byte before the answer is 408; default 15."""
    max_connections: int = attrs.field(default=2048, validator=_positive)
    """Open connections per server process (``chitram serve``); default 2048."""
    # tags and auto-tagging
    taggers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_timeout: float = attrs.field(default=30.0, validator=_positive)
    tags_max_ai: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    tags_min_confidence: int = attrs.field(
        default=70,
        validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(100)),
    )
    jobs_poll_interval: float = attrs.field(default=2.0, validator=_positive)
    jobs_max_backoff: float = attrs.field(default=300.0, validator=_positive)
    # variants and placeholders
    variant_presets: tuple[str, ...] = attrs.field(default=("w320", "w640", "w1280", "w1920"))
    variant_keys: tuple[str, ...] = attrs.field(default=(), repr=False)
    variant_max_renders: int = attrs.field(default=8, validator=_positive)
    placeholders: bool = True

    @variant_presets.validator
    def _check_presets(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        for item in value:
            try:
                parse_spec(item)
            except ChitramError as exc:
                raise ValueError(f"variant_presets: {item!r}: {exc.message}") from None

    @trusted_proxies.validator
    def _check_proxies(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        for item in value:
            ipaddress.ip_network(item, strict=False)

    # Derived values -----------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chitram.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir / "images").resolve().as_uri()

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.auto_migrate if self.auto_migrate is not None else self.is_sqlite

    @property
    def resolved_rate_limit_url(self) -> str:
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
    def signing_secret(self) -> str:
        """The JWT secret, after :meth:`with_jwt_secret` (never the published one)."""
        if self.jwt_secret is None or self.jwt_secret in PUBLISHED_JWT_SECRETS:
            raise ConfigurationError("No usable JWT secret: call Settings.with_jwt_secret() first")
        return self.jwt_secret

    # Environment --------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``CHITRAM_*`` variables; a bad value names its variable."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        for field in attrs.fields(cls):
            var = "CHITRAM_" + field.name.upper()
            if var not in env:
                continue
            raw = env[var]
            parser = _PARSERS.get(field.name, _parser_for(field.type))
            try:
                kwargs[field.name] = parser(raw)
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"{var}: {exc}", variable=var) from exc
        kwargs.update(overrides)
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as exc:
            text = str(exc.args[0]) if exc.args else str(exc)
            name = _field_in_message(text)
            var = f"CHITRAM_{name.upper()}" if name else "CHITRAM_*"
            raise ConfigurationError(f"{var}: {text}", variable=var) from exc


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _parse_optional_bool(raw: str) -> bool | None:
    return None if raw.strip().lower() in {"", "auto"} else _parse_bool(raw)


def _parse_int(raw: str) -> int:
    try:
        return int(raw.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def _parse_float(raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _parse_optional_str(raw: str) -> str | None:
    return raw or None


def _parse_json_object(raw: str) -> dict[str, Any]:
    value = json.loads(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _parse_proxies(raw: str) -> tuple[str, ...]:
    items = _parse_list(raw)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return items


def _parse_upper(raw: str) -> str:
    return raw.strip().upper()


_PARSERS: dict[str, Callable[[str], Any]] = {
    "upload_rate_limit": RateLimit.parse,
    "auth_rate_limit": RateLimit.parse,
    "auth_providers": _parse_list,
    "trusted_proxies": _parse_proxies,
    "storage_options": _parse_json_object,
    "auto_migrate": _parse_optional_bool,
    "cookie_secure": _parse_optional_bool,
    "thumbnail_format": _parse_upper,
    # hardening
    "hash_concurrency": lambda raw: _parse_int(raw) if raw.strip() else None,
    "public_url": lambda raw: _parse_public_url(raw),
    # operations (logs, metrics)
    "log_format": lambda raw: raw.strip().lower(),
    "log_level": _parse_upper,
    "metrics_address": lambda raw: _parse_address(raw) if raw.strip() else None,
}
# tags and auto-tagging
_PARSERS["taggers"] = _parse_list

# social sign-in (OAuth through Supabase)
_PARSERS["oauth_providers"] = lambda raw: tuple(p.lower() for p in _parse_list(raw))
_PARSERS["oauth_redirects"] = _parse_list


def absolute_http_url(url: str) -> bool:
    """An http(s) URL with a host, no fragment, no credentials and no whitespace or controls."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or "\\" in url:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return (
        parts.scheme in {"http", "https"}
        and bool(parts.hostname)
        and not parts.fragment
        and parts.username is None
        and parts.password is None
    )


def _parse_public_url(raw: str) -> str | None:
    value = raw.strip().rstrip("/")
    if value and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", value):
        raise ValueError(f"expected an http(s) URL such as https://img.example.org, got {raw!r}")
    return value or None


def _parser_for(type_: Any) -> Callable[[str], Any]:
    text = str(type_)
    if "None" in text and "str" in text:
        return _parse_optional_str
    if "bool" in text:
        return _parse_bool
    if "int" in text:
        return _parse_int
    if "float" in text:
        return _parse_float
    return str


def _field_in_message(message: str) -> str | None:
    for field in attrs.fields(Settings):
        if re.search(rf"\b{field.name}\b", message) or f"'{field.name}'" in message:
            return field.name
    return None


# image-work engine
def _parse_bytes(raw: str) -> int:
    """``536870912``, ``512MiB``, ``512M``, ``1GiB``, ``1G`` (binary multiples)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b?)\s*", raw.lower())
    if not m:
        raise ValueError(f"expected a byte count such as 536870912 or 512MiB, got {raw!r}")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)]


_PARSERS["image_memory_budget"] = _parse_bytes


# operations (logs, metrics)
def _parse_address(raw: str) -> str:
    """``host:port`` for a listener (``[::1]:9464`` for IPv6), checked, kept as given."""
    m = re.fullmatch(r"\[[0-9A-Fa-f:.]+\]:(\d{1,5})|[^:\[\]\s]+:(\d{1,5})", raw.strip())
    if not m or not 0 < int(m.group(1) or m.group(2)) < 65536:
        raise ValueError(f"expected host:port (e.g. 127.0.0.1:9464), got {raw!r}")
    return raw.strip()


# variants and placeholders
_PARSERS["variant_presets"] = _parse_list
_PARSERS["variant_keys"] = _parse_list
