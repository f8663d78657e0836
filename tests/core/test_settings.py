"""Settings from CHITRAM_* variables: good values parse, bad ones name their variable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chitram_core.errors import ConfigurationError
from chitram_core.settings import DEFAULT_JWT_SECRET, RateLimit, Settings


def test_defaults_are_the_embedded_default() -> None:
    settings = Settings.from_env({})
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_storage_url.startswith("file://")
    assert settings.cache_url == "memory://"
    assert settings.auth_providers == ("local",)
    assert settings.max_upload_bytes == 5 * 1024 * 1024
    assert settings.upload_rate_limit == RateLimit(10, 60)
    assert settings.should_auto_migrate


def test_values_parse() -> None:
    settings = Settings.from_env(
        {
            "CHITRAM_MAX_UPLOAD_BYTES": "1_000",
            "CHITRAM_UPLOAD_RATE_LIMIT": "off",
            "CHITRAM_AUTH_RATE_LIMIT": "5/30s",
            "CHITRAM_AUTH_PROVIDERS": "supabase, local",
            "CHITRAM_ALLOW_ANONYMOUS_UPLOADS": "yes",
            "CHITRAM_TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1",
            "CHITRAM_STORAGE_OPTIONS": '{"endpoint_url": "http://127.0.0.1:9000"}',
            "CHITRAM_THUMBNAIL_FORMAT": "webp",
            "CHITRAM_UPLOAD_ROOM_WAIT": "0",
        }
    )
    assert settings.upload_room_wait == 0
    assert settings.max_upload_bytes == 1000
    assert settings.upload_rate_limit is None
    assert settings.auth_rate_limit == RateLimit(5, 30)
    assert settings.auth_providers == ("supabase", "local")
    assert settings.allow_anonymous_uploads is True
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert settings.storage_options == {"endpoint_url": "http://127.0.0.1:9000"}
    assert settings.thumbnail_format == "WEBP"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHITRAM_MAX_UPLOAD_BYTES", "lots"),
        ("CHITRAM_MAX_UPLOAD_BYTES", "-5"),
        ("CHITRAM_ENV", "prod"),
        ("CHITRAM_UPLOAD_RATE_LIMIT", "ten per minute"),
        ("CHITRAM_ALLOW_ANONYMOUS_UPLOADS", "maybe"),
        ("CHITRAM_TRUSTED_PROXIES", "not-an-ip"),
        ("CHITRAM_STORAGE_OPTIONS", "[1, 2]"),
        ("CHITRAM_THUMBNAIL_SIZE", "5000"),
        ("CHITRAM_THUMBNAIL_QUALITY", "101"),
        ("CHITRAM_THUMBNAIL_FORMAT", "bmp"),
        ("CHITRAM_AUTH_PROVIDERS", ""),
        ("CHITRAM_CACHE_TTL", "0"),
        ("CHITRAM_UPLOAD_ROOM_WAIT", "-1"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({variable: value})
    assert variable in info.value.message


@given(st.text(max_size=30))
def test_any_text_for_a_number_is_accepted_or_named(value: str) -> None:
    try:
        Settings.from_env({"CHITRAM_UPLOAD_CONCURRENCY": value})
    except ConfigurationError as exc:
        assert "CHITRAM_UPLOAD_CONCURRENCY" in exc.message


def test_production_refuses_no_secret_and_the_published_one() -> None:
    settings = Settings.from_env({"CHITRAM_ENV": "production"})
    assert settings.jwt_secret is None
    with pytest.raises(ConfigurationError) as info:
        settings.check_production()
    assert "CHITRAM_JWT_SECRET" in info.value.message
    published = Settings.from_env(
        {"CHITRAM_ENV": "production", "CHITRAM_JWT_SECRET": DEFAULT_JWT_SECRET}
    )
    with pytest.raises(ConfigurationError) as info:
        published.check_production()
    assert "published" in info.value.message
    Settings.from_env(
        {"CHITRAM_ENV": "production", "CHITRAM_JWT_SECRET": "x" * 40}
    ).check_production()


def test_hardening_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CHITRAM_UPLOAD_IDLE_TIMEOUT": "5",
            "CHITRAM_UPLOAD_TIMEOUT": "60",
            "CHITRAM_UPLOADS_PER_USER": "2",
            "CHITRAM_HASH_CONCURRENCY": "3",
            "CHITRAM_HASH_WAIT_TIMEOUT": "2.5",
            "CHITRAM_PASSWORD_COMMON_CHECK": "false",
            "CHITRAM_REFRESH_REUSE_INTERVAL": "0",
            "CHITRAM_PUBLIC_URL": "https://img.example.org/",
            "CHITRAM_HEALTH_TOKEN": "t" * 32,
        }
    )
    assert (settings.upload_idle_timeout, settings.upload_timeout) == (5.0, 60.0)
    assert (settings.uploads_per_user, settings.hash_concurrency) == (2, 3)
    assert settings.hash_wait_timeout == 2.5 and settings.password_common_check is False
    assert settings.refresh_reuse_interval == 0
    assert settings.public_url == "https://img.example.org"
    assert settings.health_token == "t" * 32
    defaults = Settings()
    assert (defaults.upload_idle_timeout, defaults.upload_timeout) == (15.0, 120.0)
    assert defaults.uploads_per_user == 4 and defaults.refresh_reuse_interval == 10.0
    assert defaults.hash_concurrency is None and defaults.public_url is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHITRAM_PUBLIC_URL", "javascript:alert(1)"),
        ("CHITRAM_PUBLIC_URL", "img.example.org"),
        ("CHITRAM_UPLOADS_PER_USER", "0"),
        ("CHITRAM_UPLOAD_IDLE_TIMEOUT", "-1"),
        ("CHITRAM_REFRESH_REUSE_INTERVAL", "-1"),
    ],
)
def test_bad_hardening_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({variable: value})
    assert variable in info.value.message


def test_quota_settings_take_byte_counts_and_none() -> None:
    parsed = Settings.from_env({"CHITRAM_QUOTA_BYTES": "1G", "CHITRAM_QUOTA_IMAGES": "1_000"})
    assert (parsed.quota_bytes, parsed.quota_images) == (1024**3, 1000)
    unset = Settings.from_env({"CHITRAM_QUOTA_BYTES": "none", "CHITRAM_QUOTA_IMAGES": ""})
    assert (unset.quota_bytes, unset.quota_images) == (None, None)
    for var, raw in (("CHITRAM_QUOTA_BYTES", "lots"), ("CHITRAM_QUOTA_IMAGES", "-1")):
        with pytest.raises(ConfigurationError) as raised:
            Settings.from_env({var: raw})
        assert var in raised.value.message
