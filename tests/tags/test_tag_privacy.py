"""Tag listings are private and an image holds a bounded number of tags.

``/api/v1/tags``, ``/tags/popular`` and ``/tags/search`` (and ``c.tags.all / popular / search``)
count the caller's own images only and give anonymous callers nothing, unless
``public_tags`` brings the global listing back. At most ``max_tags_per_image`` tags per image:
a user tag beyond it is 400 ``INVALID_REQUEST``; AI tags beyond it are dropped.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import make_settings, new_user, picture
from fake_openai import FakeOpenAI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tags_http import auth, error_code, serving

from chitram_core import Chitram
from chitram_core.errors import InvalidRequest

pytestmark = pytest.mark.anyio

tag_name = (
    st.text(st.sampled_from("abcde-"), min_size=2, max_size=6)
    .map(str.strip)
    .filter(lambda s: len(s) >= 2 and not s.startswith("-"))
)
pools = st.lists(tag_name, min_size=0, max_size=6, unique=True)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(mine=pools, theirs=pools, prefix=st.text(st.sampled_from("abc"), min_size=1, max_size=2))
async def test_each_caller_lists_exactly_the_tags_on_their_own_images(
    chitram: Chitram, mine: list[str], theirs: list[str], prefix: str
) -> None:
    me, them = await new_user(chitram, "me"), await new_user(chitram, "them")
    for owner, pool in ((me, mine), (them, theirs)):
        image = await chitram.images.upload(picture(uuid.uuid4().int % 60000), owner=owner)
        for name in pool:
            await chitram.tags.add(image.id, name, principal=owner)
    for who, pool in ((me, mine), (them, theirs)):
        assert [t.name for t in await chitram.tags.all(100, principal=who)] == sorted(pool)
        popular = await chitram.tags.popular(100, principal=who)
        assert sorted((p.name, p.count) for p in popular) == sorted((n, 1) for n in pool)
        found = {t.name for t in await chitram.tags.search(prefix, 100, principal=who)}
        assert found == {n for n in pool if n.startswith(prefix)}
    assert await chitram.tags.all(100) == []
    assert await chitram.tags.popular(100) == []
    assert await chitram.tags.search(prefix, 100) == []


async def test_popular_counts_the_callers_images_only(chitram: Chitram) -> None:
    me, them = await new_user(chitram, "me"), await new_user(chitram, "them")
    for seed, owner in enumerate((me, them, them, them)):
        image = await chitram.images.upload(picture(seed), owner=owner)
        await chitram.tags.add(image.id, "cat", principal=owner)
    mine = await chitram.tags.popular(principal=me)
    assert [(p.name, p.count) for p in mine] == [("cat", 1)]
    theirs = await chitram.tags.popular(principal=them)
    assert [(p.name, p.count) for p in theirs] == [("cat", 3)]


async def test_public_tags_lists_everyones_tags_to_anyone(tmp_path: Path) -> None:
    settings_ = make_settings(tmp_path, public_tags=True)
    async with Chitram(settings_, background=False) as chitram:
        me, them = await new_user(chitram, "me"), await new_user(chitram, "them")
        for seed, (owner, name) in enumerate(((me, "apple"), (them, "avocado"))):
            image = await chitram.images.upload(picture(seed), owner=owner)
            await chitram.tags.add(image.id, name, principal=owner)
        assert [t.name for t in await chitram.tags.all()] == ["apple", "avocado"]
        assert [t.name for t in await chitram.tags.search("a", principal=me)] == [
            "apple",
            "avocado",
        ]
        assert {p.name for p in await chitram.tags.popular()} == {"apple", "avocado"}


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(cap=st.integers(1, 6), extra=st.integers(1, 3))
async def test_a_tag_beyond_the_cap_is_invalid_request_and_not_stored(
    tmp_path_factory: pytest.TempPathFactory, cap: int, extra: int
) -> None:
    settings_ = make_settings(tmp_path_factory.mktemp("cap"), max_tags_per_image=cap)
    async with Chitram(settings_, background=False) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(picture(cap), owner=owner)
        names = [f"tag {i}" for i in range(cap + extra)]
        for name in names[:cap]:
            await chitram.tags.add(image.id, name, principal=owner)
        for name in names[cap:]:
            with pytest.raises(InvalidRequest):
                await chitram.tags.add(image.id, name, principal=owner)
        assert [t.name for t in await chitram.tags.for_image(image.id)] == sorted(names[:cap])


async def test_ai_tags_beyond_the_cap_are_dropped_not_an_error(
    tmp_path: Path, openai: FakeOpenAI
) -> None:
    openai.answer = "alpha, bravo, charlie, delta"
    settings_ = make_settings(
        tmp_path,
        max_tags_per_image=3,
        taggers=("openai",),
        openai_base_url=openai.base_url,
    )
    async with Chitram(settings_, background=False) as chitram:
        owner = await new_user(chitram)
        image = await chitram.images.upload(picture(7), owner=owner)
        await chitram.tags.add(image.id, "mine", principal=owner)
        await chitram.tags.add(image.id, "also mine", principal=owner)
        applied = await chitram.tags.auto_tag(image.id, principal=owner)
        assert [t.name for t in applied] == ["alpha"]
        assert len(await chitram.tags.for_image(image.id)) == 3
        with pytest.raises(InvalidRequest):
            await chitram.tags.add(image.id, "one more", principal=owner)


# over HTTP -----------------------------------------------------------------------------------


async def test_http_listings_are_the_callers_own_and_empty_for_anonymous(tmp_path: Path) -> None:
    async with serving(tmp_path) as client:
        mine, theirs = await client.token(), await client.token()
        for token, seed, name in ((mine, 1, "secret plan"), (theirs, 2, "sunset")):
            image_id = await client.upload(token, seed)
            assert (await client.tag(token, image_id, name)).status_code == 201
        for path, params in (
            ("/api/v1/tags", {}),
            ("/api/v1/tags/popular", {}),
            ("/api/v1/tags/search", {"q": "s"}),
        ):
            anonymous = await client.http.get(path, params=params)
            assert anonymous.status_code == 200 and anonymous.json() == []
            assert "no-store" in anonymous.headers["cache-control"]
            own = await client.http.get(path, params=params, headers=auth(mine))
            assert [t["name"] for t in own.json()] == ["secret plan"]
            other = await client.http.get(path, params=params, headers=auth(theirs))
            assert [t["name"] for t in other.json()] == ["sunset"]


async def test_http_public_tags_answers_anonymous_callers(tmp_path: Path) -> None:
    async with serving(tmp_path, public_tags=True) as client:
        token = await client.token()
        image_id = await client.upload(token, 1)
        assert (await client.tag(token, image_id, "sunset")).status_code == 201
        listed = (await client.http.get("/api/v1/tags")).json()
        assert [t["name"] for t in listed] == ["sunset"]


async def test_http_the_tag_beyond_the_cap_is_400_invalid_request(tmp_path: Path) -> None:
    async with serving(tmp_path, max_tags_per_image=2) as client:
        token = await client.token()
        image_id = await client.upload(token, 1)
        for name in ("one", "two"):
            assert (await client.tag(token, image_id, name)).status_code == 201
        refused = await client.tag(token, image_id, "three")
        assert error_code(refused, 400) == "INVALID_REQUEST"
        assert "at most 2 tags" in refused.json()["detail"]["message"]
        listed = await client.http.get(f"/api/v1/images/{image_id}/tags")
        assert [t["name"] for t in listed.json()] == ["one", "two"]
