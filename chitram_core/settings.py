"""Settings: one frozen attrs object, built from ``CHITRAM_*`` variables or by hand.

Invalid values are rejected at the edge with a message naming the variable, so a bad deployment
fails at start-up instead of at the first request.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from chitram_core.errors import ChitramError, ConfigurationError

DEFAULT_JWT_SECRET = "chitram-development-secret-change-me-0123456789abcdef"

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


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
    jwt_secret: str = DEFAULT_JWT_SECRET
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
    auto_migrate: bool | None = None
    web_ui: bool = True
    cookie_secure: bool | None = None
    # wave 2: image-work engine
    image_workers: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )
    image_memory_budget: int = attrs.field(default=512 * 1024 * 1024, validator=_positive)
    image_wait_timeout: float = attrs.field(default=10.0, validator=_positive)
    jpeg_max_scans: int = attrs.field(default=100, validator=_positive)
    max_pixels_unstreamed: int = attrs.field(default=16_000_000, validator=_positive)
    # wave 2: variants and placeholders
    variant_presets: tuple[str, ...] = attrs.field(default=("w320", "w640", "w1280", "w1920"))
    variant_keys: tuple[str, ...] = attrs.field(default=(), repr=False)
    variant_max_renders: int = attrs.field(default=8, validator=_positive)
    placeholders: bool = True

    @variant_presets.validator
    def _check_presets(self, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        from chitram_core.images.variants import parse_spec

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
        if self.jwt_secret == DEFAULT_JWT_SECRET:
            problems.append("CHITRAM_JWT_SECRET is the development default; set a random secret")
        if len(self.jwt_secret) < 32:
            problems.append("CHITRAM_JWT_SECRET must be at least 32 characters in production")
        if problems:
            raise ConfigurationError("Refusing to start in production: " + "; ".join(problems))

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
}


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


# wave 2: image-work engine
def _parse_bytes(raw: str) -> int:
    """``536870912``, ``512MiB``, ``512M``, ``1GiB``, ``1G`` (binary multiples)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b?)\s*", raw.lower())
    if not m:
        raise ValueError(f"expected a byte count such as 536870912 or 512MiB, got {raw!r}")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)]


_PARSERS["image_memory_budget"] = _parse_bytes


# wave 2: variants and placeholders
_PARSERS["variant_presets"] = _parse_list
_PARSERS["variant_keys"] = _parse_list
