"""``CHITRAM_*`` variables: how each one's text becomes a :class:`~chitram_core.settings.Settings`
value.

One table, :data:`_PARSERS`, maps a field name to its parser; a field not in it is parsed by its
type (bool, int, float, optional str). A new setting with a syntax of its own adds one line to
the table next to its parser. Nothing here imports the settings: :func:`settings_from_env`
takes the class.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from chitram_core.errors import ConfigurationError

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@attrs.frozen
class RateLimit:
    """``limit`` events per ``period`` seconds, checked over a sliding window."""

    limit: int
    """Events allowed per window."""
    period: int
    """The window, in seconds."""

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


def _field_in_message(cls: Any, message: str) -> str | None:
    for field in attrs.fields(cls):
        name: str = field.name
        if re.search(rf"\b{name}\b", message) or f"'{name}'" in message:
            return name
    return None


def settings_from_env(cls: Any, env: Mapping[str, str], overrides: Mapping[str, Any]) -> Any:
    """An instance of the attrs class ``cls`` from ``CHITRAM_<FIELD>`` variables of ``env``,
    then ``overrides``; a value that does not parse or validate is a
    :class:`~chitram_core.errors.ConfigurationError` naming its variable."""
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
        name = _field_in_message(cls, text)
        var = f"CHITRAM_{name.upper()}" if name else "CHITRAM_*"
        raise ConfigurationError(f"{var}: {text}", variable=var) from exc


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
