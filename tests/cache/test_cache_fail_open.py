"""``fail_open`` reaches every cache plugin, and a ``fail_open`` in the cache URL wins."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from chitram_core import Chitram, Settings, plugins
from chitram_core.cache.memory import create_cache as create_memory_cache
from chitram_core.errors import RateLimitExceeded
from chitram_core.settings import RateLimit

pytestmark = pytest.mark.anyio

RULE = RateLimit(limit=100, period=60)


def settings(tmp_path: Path, cache_url: str, **overrides: Any) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path / "data",
        cache_url=cache_url,
        auth_rate_limit=None,
        **overrides,
    )


@pytest.fixture
def recorded() -> Any:
    """A third-party ``chitram.cache`` plugin (scheme ``kv``) that records what it was given."""
    calls: list[tuple[str, dict[str, Any]]] = []
    name = f"kv{uuid.uuid4().hex[:8]}"

    def create_cache(url: str, **options: Any) -> Any:
        calls.append((url, dict(options)))
        options.pop("fail_open", None)
        return create_memory_cache("memory://", **options)

    plugins.register(plugins.CACHE, name, create_cache)
    try:
        yield name, calls
    finally:
        plugins.unregister(plugins.CACHE, name)


@pytest.mark.parametrize("fail_open", [True, False])
async def test_a_third_party_cache_plugin_gets_fail_open(
    tmp_path: Path, recorded: Any, fail_open: bool
) -> None:
    name, calls = recorded
    url = f"{name}://cache.internal:9000/0"
    async with Chitram(settings(tmp_path, url, cache_fail_open=fail_open), background=False):
        pass
    assert calls == [(url, {"fail_open": fail_open})]


async def test_a_fail_open_in_the_url_reaches_the_plugin_in_the_url_only(
    tmp_path: Path, recorded: Any
) -> None:
    name, calls = recorded
    url = f"{name}://cache.internal/0?fail_open=false"
    async with Chitram(settings(tmp_path, url, cache_fail_open=True), background=False):
        pass
    assert calls == [(url, {})]


async def test_a_plugin_factory_that_takes_only_the_url_still_opens(tmp_path: Path) -> None:
    name = f"plain{uuid.uuid4().hex[:8]}"

    def create_cache(url: str) -> Any:
        return create_memory_cache("memory://")

    plugins.register(plugins.CACHE, name, create_cache)
    try:
        async with Chitram(settings(tmp_path, f"{name}://x"), background=False) as chitram:
            assert chitram.cache is not None
    finally:
        plugins.unregister(plugins.CACHE, name)


@pytest.mark.parametrize(
    ("in_url", "setting", "refused"),
    [
        (None, True, False),
        (None, False, True),
        ("false", True, True),  # the documented fail-closed switch wins over the default
        ("false", False, True),
        ("true", False, False),  # the URL wins either way
        ("true", True, False),
    ],
)
@pytest.mark.asyncio_only  # redis-py
async def test_rate_limits_with_redis_down_follow_the_url_then_the_setting(
    tmp_path: Path, unused_port: int, in_url: str | None, setting: bool, refused: bool
) -> None:
    url = f"redis://127.0.0.1:{unused_port}/0"
    if in_url is not None:
        url += f"?fail_open={in_url}"
    async with Chitram(
        settings(tmp_path, url, cache_fail_open=setting), background=False
    ) as chitram:
        if refused:
            with pytest.raises(RateLimitExceeded):
                await chitram.rate_limiter.check("upload", "someone", RULE)
        else:
            decision = await chitram.rate_limiter.check("upload", "someone", RULE)
            assert decision.allowed and decision.degraded


@pytest.mark.asyncio_only  # redis-py
async def test_the_environment_variable_sets_fail_open_when_the_url_does_not(
    tmp_path: Path, unused_port: int
) -> None:
    configured = Settings.from_env(
        {
            "CHITRAM_CACHE_URL": f"redis://127.0.0.1:{unused_port}/0",
            "CHITRAM_CACHE_FAIL_OPEN": "false",
            "CHITRAM_DATA_DIR": str(tmp_path / "data"),
            "CHITRAM_ENV": "test",
        }
    )
    async with Chitram(configured, background=False) as chitram:
        with pytest.raises(RateLimitExceeded):
            await chitram.rate_limiter.check("upload", "someone", RULE)
