"""The parts split out of the image service: the delete policy, the small-object LRU, the
wiring of ``Chitram`` and health given the parts it reads."""

from __future__ import annotations

import pytest

from chitram_core import Chitram
from chitram_core.cache.small import SmallObjects
from chitram_core.delete_policy import authorize_delete, hash_token
from chitram_core.errors import DeleteTokenRequired, Forbidden, InvalidDeleteToken
from chitram_core.health import check_health
from chitram_core.models import Principal

OWNER = Principal(user_id="owner", email="owner@example.com")
OTHER = Principal(user_id="other", email="other@example.com")
TOKEN_HASH = hash_token("secret-token")


def test_the_owner_may_delete_their_image() -> None:
    authorize_delete("owner", None, OWNER, None)
    authorize_delete("owner", None, OWNER, "any token is ignored")


def test_an_anonymous_image_needs_its_delete_token() -> None:
    authorize_delete(None, TOKEN_HASH, None, "secret-token")
    authorize_delete(None, TOKEN_HASH, OWNER, "secret-token")  # signed in, still by token
    with pytest.raises(DeleteTokenRequired):
        authorize_delete(None, TOKEN_HASH, OWNER, None)
    with pytest.raises(InvalidDeleteToken):
        authorize_delete(None, TOKEN_HASH, None, "wrong")
    with pytest.raises(InvalidDeleteToken):
        authorize_delete(None, None, None, "secret-token")  # no hash kept: nothing matches


def test_someone_elses_image_is_forbidden_even_with_a_token() -> None:
    with pytest.raises(Forbidden):
        authorize_delete("owner", None, OTHER, None)
    with pytest.raises(Forbidden):
        authorize_delete("owner", TOKEN_HASH, None, "secret-token")


def test_delete_tokens_are_kept_as_sha256_hex() -> None:
    assert TOKEN_HASH != "secret-token"
    assert len(TOKEN_HASH) == 64 and int(TOKEN_HASH, 16) >= 0


def test_small_objects_drop_the_least_recently_used_past_the_budget() -> None:
    small = SmallObjects(budget=10)
    small.put("a", b"1234")
    small.put("b", b"5678")
    assert small.get("a") == b"1234"  # now "b" is the least recently used
    small.put("c", b"90ab")
    assert small.get("b") is None
    assert small.get("a") == b"1234" and small.get("c") == b"90ab"
    assert small.size == 8


def test_small_objects_refuse_what_exceeds_the_budget_and_forget_on_discard() -> None:
    small = SmallObjects(budget=4)
    small.put("big", b"12345")
    assert small.get("big") is None and small.size == 0
    small.put("a", b"12")
    small.put("a", b"other bytes are never stored over the same hash")
    assert small.get("a") == b"12"
    small.discard("a")
    small.discard("a")
    assert small.get("a") is None and small.size == 0


@pytest.mark.anyio
async def test_chitram_hands_the_image_service_the_parts_it_holds(chitram: Chitram) -> None:
    images = chitram.images
    assert images.thumbnailer is chitram.thumbnails
    assert images.thumbnail_params == chitram.thumbnails.params_key
    assert images.variants is chitram.variants
    assert images.engine is chitram.engine
    assert images.remover is chitram.remover
    assert images.record_hooks == (chitram.tags.enqueue,)


@pytest.mark.anyio
async def test_health_from_the_parts_is_the_reports_of_chitram(chitram: Chitram) -> None:
    direct = await check_health(
        version="9.9.9",
        database=chitram.database,
        storage=chitram.storage,
        cache=chitram.cache,
        auth=chitram.auth,
        upload_slots=chitram.upload_slots,
        limiter_cache=None,
    )
    report = await chitram.health()
    assert direct.version == "9.9.9"
    assert direct.rate_limiter == "disabled"
    assert report.rate_limiter == chitram.rate_limiter_state() == "connected"
    assert (direct.status, direct.database, direct.storage, direct.cache) == (
        report.status,
        report.database,
        report.storage,
        report.cache,
    )
    assert direct.upload_concurrency == report.upload_concurrency
    assert set(direct.checks) == set(report.checks)
