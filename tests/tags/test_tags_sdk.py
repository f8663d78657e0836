"""Tags in the SDK: names, ownership, listing, search, counts, filtering."""

from __future__ import annotations

import uuid

import pytest
from conftest import new_user, picture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from chitram_core import Chitram
from chitram_core.db.tables import image_tags
from chitram_core.errors import (
    Forbidden,
    ImageNotFound,
    InvalidRequest,
    TagNotFound,
    ValidationError,
)
from chitram_core.models import ImageTag, Principal
from chitram_core.tags import names

pytestmark = pytest.mark.anyio


async def upload(chitram: Chitram, owner: Principal | None, seed: int, filename: str = "x.png"):  # type: ignore[no-untyped-def]
    return await chitram.images.upload(picture(seed), filename=filename, owner=owner)


# names ---------------------------------------------------------------------------------------

allowed_char = st.characters(categories=("L", "Nd")) | st.sampled_from(" -")


@given(st.text(allowed_char, min_size=1, max_size=60), st.text(" ", max_size=3))
def test_names_are_trimmed_and_lower_cased(core: str, pad: str) -> None:
    raw = pad + core + pad
    expected = raw.strip().lower()
    if 2 <= len(expected) <= 50 and all(c.isalnum() or c in " -" for c in expected):
        assert names.normalize(raw) == expected
    else:
        with pytest.raises(ValidationError):
            names.normalize(raw)


@given(
    st.text(min_size=2, max_size=50).filter(
        lambda t: any(c not in " -" and not c.isalnum() for c in t.strip().lower())
    )
)
def test_a_name_with_anything_but_letters_digits_spaces_hyphens_is_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        names.normalize(raw)


@given(st.text(max_size=80))
def test_cleaned_suggestions_are_always_valid_names_or_none(raw: str) -> None:
    cleaned = names.clean_suggestion(raw)
    if cleaned is not None:
        assert names.normalize(cleaned) == cleaned


# adding and removing ----------------------------------------------------------------------------


async def test_the_owner_adds_a_tag_and_it_is_normalised(chitram: Chitram, user: Principal) -> None:
    image = await upload(chitram, user, 1)
    tag = await chitram.tags.add(image.id, "  Sunny Beach ", principal=user, category="Place")
    assert tag == ImageTag(name="sunny beach", category="place", source="user", confidence=None)
    assert await chitram.tags.for_image(image.id) == [tag]


async def test_the_same_name_twice_is_invalid_request(chitram: Chitram, user: Principal) -> None:
    image = await upload(chitram, user, 2)
    await chitram.tags.add(image.id, "cat", principal=user)
    with pytest.raises(InvalidRequest):
        await chitram.tags.add(image.id, " CAT ", principal=user)


async def test_only_the_owner_changes_tags(
    chitram: Chitram, user: Principal, other_user: Principal
) -> None:
    image = await upload(chitram, user, 3)
    await chitram.tags.add(image.id, "cat", principal=user)
    with pytest.raises(Forbidden):
        await chitram.tags.add(image.id, "dog", principal=other_user)
    with pytest.raises(Forbidden):
        await chitram.tags.remove(image.id, "cat", principal=other_user)
    assert [t.name for t in await chitram.tags.for_image(image.id)] == ["cat"]


async def test_an_anonymous_image_cannot_be_tagged(chitram: Chitram, user: Principal) -> None:
    image = await upload(chitram, None, 4)
    with pytest.raises(Forbidden):
        await chitram.tags.add(image.id, "cat", principal=user)


async def test_unknown_images(chitram: Chitram, user: Principal) -> None:
    for image_id in (str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(ImageNotFound):
            await chitram.tags.add(image_id, "cat", principal=user)
        with pytest.raises(ImageNotFound):
            await chitram.tags.remove(image_id, "cat", principal=user)
        assert await chitram.tags.for_image(image_id) == []


async def test_remove_matches_any_case_and_a_missing_tag_is_tag_not_found(
    chitram: Chitram, user: Principal
) -> None:
    image = await upload(chitram, user, 5)
    await chitram.tags.add(image.id, "cat", principal=user)
    await chitram.tags.remove(image.id, "CaT", principal=user)
    assert await chitram.tags.for_image(image.id) == []
    with pytest.raises(TagNotFound):
        await chitram.tags.remove(image.id, "cat", principal=user)


@pytest.mark.parametrize("bad", ["a", "x" * 51, "cat!", "dog_house", "<b>", "", "   "])
async def test_bad_names_are_validation_errors(chitram: Chitram, user: Principal, bad: str) -> None:
    image = await upload(chitram, user, 6)
    with pytest.raises(ValidationError):
        await chitram.tags.add(image.id, bad, principal=user)


async def test_bad_category_is_a_validation_error(chitram: Chitram, user: Principal) -> None:
    image = await upload(chitram, user, 7)
    with pytest.raises(ValidationError):
        await chitram.tags.add(image.id, "cat", principal=user, category="x" * 21)


# listing, popular, search --------------------------------------------------------------------


async def test_all_is_alphabetical_and_limited(chitram: Chitram, user: Principal) -> None:
    image = await upload(chitram, user, 8)
    for name in ("zebra", "apple", "mango"):
        await chitram.tags.add(image.id, name, principal=user)
    assert [t.name for t in await chitram.tags.all(principal=user)] == ["apple", "mango", "zebra"]
    assert [t.name for t in await chitram.tags.all(limit=2, principal=user)] == ["apple", "mango"]
    with pytest.raises(ValidationError):
        await chitram.tags.all(limit=0, principal=user)


async def test_popular_counts_only_live_images(chitram: Chitram, user: Principal) -> None:
    first, second, third = [await upload(chitram, user, 10 + i) for i in range(3)]
    for image in (first, second, third):
        await chitram.tags.add(image.id, "cat", principal=user)
    await chitram.tags.add(first.id, "dog", principal=user)
    await chitram.tags.add(second.id, "dog", principal=user)
    await chitram.tags.add(third.id, "bird", principal=user)
    popular = await chitram.tags.popular(principal=user)
    assert [(p.name, p.count) for p in popular] == [("cat", 3), ("dog", 2), ("bird", 1)]

    await chitram.images.delete(second.id, principal=user)
    await chitram.images.delete(third.id, principal=user)
    popular = await chitram.tags.popular(principal=user)
    assert [(p.name, p.count) for p in popular] == [("cat", 1), ("dog", 1)]
    # an image's tags go with it
    async with chitram.database.connect() as conn:
        left = (await conn.execute(select(image_tags.c.image_id))).scalars().all()
    assert set(left) == {first.id}


async def test_search_is_a_case_insensitive_prefix(chitram: Chitram, user: Principal) -> None:
    image = await upload(chitram, user, 20)
    for name in ("sunset", "sun", "summer", "beach", "sun-hat"):
        await chitram.tags.add(image.id, name, principal=user)
    assert [t.name for t in await chitram.tags.search("SUN", principal=user)] == [
        "sun",
        "sun-hat",
        "sunset",
    ]
    assert [t.name for t in await chitram.tags.search("su", limit=2, principal=user)] == [
        "summer",
        "sun",
    ]
    assert await chitram.tags.search("", principal=user) == []
    assert await chitram.tags.search("%", principal=user) == []
    assert await chitram.tags.search("s_n", principal=user) == []


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    pool=st.lists(
        st.text(st.sampled_from("ab- "), min_size=2, max_size=5)
        .map(str.strip)
        .filter(lambda s: len(s) >= 2),
        min_size=1,
        max_size=8,
        unique=True,
    ),
    prefix=st.text(st.sampled_from("ab-"), min_size=1, max_size=3),
)
async def test_search_finds_exactly_the_names_with_the_prefix(
    chitram: Chitram, pool: list[str], prefix: str
) -> None:
    owner = await new_user(chitram, "search")
    image = await chitram.images.upload(picture(uuid.uuid4().int % 60000), owner=owner)
    for name in pool:
        await chitram.tags.add(image.id, name, principal=owner)
    found = {t.name for t in await chitram.tags.search(prefix, limit=100, principal=owner)}
    assert found == {n for n in pool if n.startswith(prefix)}


# filtering the owner's images -----------------------------------------------------------------


async def test_list_by_tags_needs_every_tag(
    chitram: Chitram, user: Principal, other_user: Principal
) -> None:
    a = await upload(chitram, user, 30)
    b = await upload(chitram, user, 31)
    c = await upload(chitram, user, 32)
    theirs = await upload(chitram, other_user, 33)
    await chitram.tags.add(a.id, "cat", principal=user)
    await chitram.tags.add(a.id, "beach", principal=user)
    await chitram.tags.add(b.id, "cat", principal=user)
    await chitram.tags.add(theirs.id, "cat", principal=other_user)
    page = await chitram.images.list(user, tags=["cat"])
    assert [i.id for i in page.items] == [b.id, a.id]
    page = await chitram.images.list(user, tags=["CAT", "beach"])
    assert [i.id for i in page.items] == [a.id]
    assert (await chitram.images.list(user, tags=["nobody-uses-this"])).items == ()
    assert c.id not in [i.id for i in (await chitram.images.list(user, tags=["cat"])).items]
    with pytest.raises(ValidationError):
        await chitram.images.list(user, tags=["bad!"])


async def test_query_matches_a_filename_part_or_a_tag_prefix(
    chitram: Chitram, user: Principal
) -> None:
    holiday = await upload(chitram, user, 40, filename="Holiday_2024.png")
    tagged = await upload(chitram, user, 41, filename="img001.png")
    other = await upload(chitram, user, 42, filename="other.png")
    await chitram.tags.add(tagged.id, "holidays abroad", principal=user)
    await chitram.tags.add(other.id, "work", principal=user)
    page = await chitram.images.list(user, query="HOLI")
    assert [i.id for i in page.items] == [tagged.id, holiday.id]
    page = await chitram.images.list(user, query="day_2")
    assert [i.id for i in page.items] == [holiday.id]
    assert (await chitram.images.list(user, query="%")).items == ()
    page = await chitram.images.list(user, query="holi", tags=["holidays abroad"])
    assert [i.id for i in page.items] == [tagged.id]


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    tagged=st.lists(st.booleans(), min_size=0, max_size=9),
    limit=st.integers(1, 4),
)
async def test_filtered_cursors_never_skip_or_repeat(
    chitram: Chitram, tagged: list[bool], limit: int
) -> None:
    owner = await new_user(chitram, "pages")
    seed = uuid.uuid4().int % 50000
    expected = []
    for i, has_tag in enumerate(tagged):
        image = await chitram.images.upload(picture(seed + i), filename="p.png", owner=owner)
        if has_tag:
            await chitram.tags.add(image.id, "keep", principal=owner)
            expected.append(image.id)
    seen: list[str] = []
    cursor = None
    while True:
        page = await chitram.images.list(owner, limit=limit, cursor=cursor, tags=["keep"])
        seen.extend(i.id for i in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(expected))
