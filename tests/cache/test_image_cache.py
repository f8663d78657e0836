"""Choosing the backend by URL, and cache-aside for image rows with X-Cache statuses."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chitram_core.cache import ImageCache, cache_check, open_cache, plugin_name
from chitram_core.cache.base import ResilientCache
from chitram_core.cache.memory import MemoryCache
from chitram_core.errors import ConfigurationError, PluginError
from chitram_core.models import Image

pytestmark = pytest.mark.anyio


def make_image(**changes: object) -> Image:
    fields: dict[str, object] = {
        "id": "0b6f5a53-7a57-4a4e-9a55-4c3e0e8f7d11",
        "filename": "café ☕.jpg",
        "content_type": "image/jpeg",
        "file_size": 1234,
        "width": 640,
        "height": 480,
        "sha256": "ab" * 32,
        "created_at": datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
        "owner_id": "user-1",
        "thumbnail_ready": True,
        "thumbnail_error": None,
        "delete_token": None,
    }
    fields.update(changes)
    return Image(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("memory://", "memory"),
        ("memory://?max_entries=10", "memory"),
        ("redis://localhost:6379/0", "redis"),
        ("rediss://cache.example.com:6380/1", "redis"),
        ("off", None),
        ("OFF", None),
        ("custom://x", "custom"),
    ],
)
def test_the_plugin_is_chosen_by_scheme(url: str, name: str | None) -> None:
    assert plugin_name(url) == name


def test_a_url_without_a_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="CHITRAM_CACHE_URL"):
        plugin_name("localhost:6379")


def test_open_cache_builds_the_plugin() -> None:
    assert isinstance(open_cache("memory://?max_entries=5"), MemoryCache)
    assert isinstance(open_cache("redis://127.0.0.1:6379/0"), ResilientCache)
    assert open_cache("off") is None


def test_an_unknown_plugin_is_reported_by_name() -> None:
    with pytest.raises(PluginError, match="nosuch"):
        open_cache("nosuch://host")


async def test_a_disabled_cache_says_disabled() -> None:
    images = ImageCache(None)
    assert not images.enabled
    lookup = await images.lookup("x")
    assert lookup.status == "DISABLED"
    assert lookup.image is None
    assert await images.get_image("x") is None
    assert await images.begin_fill("x") is None
    assert await images.fill_image(make_image(), None) is False
    await images.invalidate_image("x")
    assert (await cache_check(None))[0] == "disabled"


async def test_a_miss_then_fill_then_hit() -> None:
    images = ImageCache(MemoryCache())
    image = make_image()
    assert await images.get_image(image.id) is None
    token = await images.begin_fill(image.id)
    assert await images.fill_image(image, token) is True
    assert await images.get_image(image.id) == image


async def test_lookup_names_the_x_cache_status() -> None:
    images = ImageCache(MemoryCache())
    image = make_image()
    miss = await images.lookup(image.id)
    assert miss.status == "MISS"
    assert not miss.hit
    assert await images.fill_image(image, miss.token) is True
    hit = await images.lookup(image.id)
    assert hit.status == "HIT"
    assert hit.image == image


async def test_internal_fields_round_trip() -> None:
    images = ImageCache(MemoryCache())
    image = make_image(owner_id="owner-42", thumbnail_ready=False, thumbnail_error="boom")
    await images.set_image(image)
    cached = await images.get_image(image.id)
    assert cached == image
    assert cached is not None
    assert cached.created_at.tzinfo is not None


async def test_the_delete_token_is_never_cached() -> None:
    images = ImageCache(MemoryCache())
    image = make_image(owner_id=None, delete_token="one-time-secret")
    await images.set_image(image)
    cached = await images.get_image(image.id)
    assert cached is not None
    assert cached.delete_token is None
    assert cached.owner_id is None


async def test_a_row_deleted_while_a_reader_missed_is_not_put_back() -> None:
    images = ImageCache(MemoryCache())
    image = make_image()
    assert await images.get_image(image.id) is None  # a reader misses
    token = await images.begin_fill(image.id)  # takes its token, reads the row ...
    await images.invalidate_image(image.id)  # a writer deletes the row, then invalidates
    assert await images.fill_image(image, token) is False  # ... and cannot put it back
    assert await images.get_image(image.id) is None


async def test_a_token_fills_only_its_own_image() -> None:
    images = ImageCache(MemoryCache())
    token = await images.begin_fill("some-other-id")
    assert await images.fill_image(make_image(), token) is False


async def test_a_corrupt_entry_is_a_miss() -> None:
    cache = MemoryCache()
    images = ImageCache(cache)
    await cache.set(images.key("x"), b"not json", 60)
    assert (await images.lookup("x")).status == "MISS"


async def test_health_reports_a_working_cache_as_connected() -> None:
    flat, check = await cache_check(MemoryCache())
    assert flat == "connected"
    assert check.status == "healthy"
    assert check.latency_ms is not None


IDS = [f"0b6f5a53-7a57-4a4e-9a55-4c3e0e8f7d1{n}" for n in range(3)]


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["set", "fill", "invalidate", "get"]), st.sampled_from(IDS)),
        max_size=40,
    ),
    ready=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_get_image_always_answers_the_row_last_stored(
    steps: list[tuple[str, str]], ready: list[bool]
) -> None:
    """Reusing decoded rows never answers a row the cache no longer holds."""

    async def scenario() -> None:
        cache = ImageCache(MemoryCache())
        expected: dict[str, Image | None] = {}
        for (op, image_id), flag in zip(steps, ready, strict=False):
            image = make_image(id=image_id, thumbnail_ready=flag, filename=f"{op}-{flag}.jpg")
            if op == "set":
                await cache.set_image(image)
                expected[image_id] = image
            elif op == "fill":
                token = await cache.begin_fill(image_id)
                if await cache.fill_image(image, token):
                    expected[image_id] = image
            elif op == "invalidate":
                await cache.invalidate_image(image_id)
                expected[image_id] = None
            else:
                assert await cache.get_image(image_id) == expected.get(image_id)
        for image_id in IDS:
            assert await cache.get_image(image_id) == expected.get(image_id)

    anyio.run(scenario)


async def test_unchanged_cache_bytes_give_the_same_image_object() -> None:
    cache = ImageCache(MemoryCache())
    image = make_image()
    await cache.set_image(image)
    first = await cache.get_image(image.id)
    assert first == image
    assert await cache.get_image(image.id) is first
    await cache.set_image(make_image(thumbnail_ready=False))
    changed = await cache.get_image(image.id)
    assert changed is not None and changed is not first and not changed.thumbnail_ready


async def test_get_or_load_is_the_one_cache_aside() -> None:
    image = make_image()
    loads: list[str] = []

    async def load(image_id: str) -> Image:
        loads.append(image_id)
        return image

    images = ImageCache(MemoryCache())
    assert await images.get_or_load(image.id, load) == (image, "MISS")
    assert await images.get_or_load(image.id, load) == (image, "HIT")
    assert loads == [image.id]  # the hit did not load
    assert await ImageCache(None).get_or_load(image.id, load) == (image, "DISABLED")


async def test_get_or_load_never_puts_back_a_row_invalidated_while_it_loaded() -> None:
    image = make_image()
    images = ImageCache(MemoryCache())

    async def load_while_deleted(image_id: str) -> Image:
        await images.invalidate_image(image_id)  # a delete lands between the miss and the fill
        return image

    assert await images.get_or_load(image.id, load_while_deleted) == (image, "MISS")
    assert await images.get_image(image.id) is None  # the stale row was not cached


async def test_get_or_load_lets_the_loaders_error_through_and_caches_nothing() -> None:
    images = ImageCache(MemoryCache())

    async def missing(image_id: str) -> Image:
        raise LookupError(image_id)

    with pytest.raises(LookupError):
        await images.get_or_load("gone", missing)
    assert await images.get_image("gone") is None
