"""The built-in taggers against the tagger conformance suite, the openai tagger's wire protocol
against a fake OpenAI-compatible server, and the palette tagger's answers."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from conftest import make_settings
from fake_openai import FakeOpenAI
from hypothesis import given
from hypothesis import strategies as st
from netkit import free_port
from PIL import Image

from chitram_core.errors import TaggerUnavailable
from chitram_core.images.model_input import model_jpeg
from chitram_core.models import SuggestedTag
from chitram_core.taggers import Tagger
from chitram_core.taggers.openai import OpenAITagger, parse_answer
from chitram_core.taggers.palette import PaletteTagger, palette_tags
from chitram_core.testing.tagger_conformance import TaggerConformance, sample_image

pytestmark = pytest.mark.anyio


class TestOpenAITaggerConformance(TaggerConformance):
    @pytest.fixture
    async def tagger(self, openai: FakeOpenAI, tmp_path) -> AsyncIterator[Tagger]:  # type: ignore[no-untyped-def]
        tagger = OpenAITagger(make_settings(tmp_path, openai_base_url=openai.base_url))
        yield tagger
        await tagger.close()

    @pytest.fixture
    async def unavailable_tagger(self, tmp_path) -> AsyncIterator[Tagger | None]:  # type: ignore[no-untyped-def]
        url = f"http://127.0.0.1:{free_port()}/v1"
        tagger = OpenAITagger(make_settings(tmp_path, openai_base_url=url))
        yield tagger
        await tagger.close()


class TestPaletteTaggerConformance(TaggerConformance):
    @pytest.fixture
    async def tagger(self) -> AsyncIterator[Tagger]:
        yield PaletteTagger()


async def test_the_request_is_an_openai_chat_completion_with_a_small_jpeg(
    openai: FakeOpenAI, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(
        tmp_path, openai_base_url=openai.base_url, openai_api_key="sk-test", openai_model="m-1"
    )
    tagger = OpenAITagger(settings)
    try:
        image = sample_image((1600, 900), (10, 200, 10))
        suggestions = await tagger.suggest(image, "image/jpeg")
    finally:
        await tagger.close()
    assert suggestions == [
        SuggestedTag("Cat", 90),
        SuggestedTag("sunny beach", 90),
        SuggestedTag("dog.", 90),
    ]
    (seen,) = openai.requests
    assert seen.authorization == "Bearer sk-test"
    assert seen.body["model"] == "m-1"
    (message,) = seen.body["messages"]
    assert message["role"] == "user"
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["text", "image_url"]
    assert seen.image is not None
    assert seen.image.format == "JPEG"
    assert (seen.image.width, seen.image.height) == (512, 288)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 401])
async def test_error_statuses_are_unavailable(openai: FakeOpenAI, tmp_path, status: int) -> None:  # type: ignore[no-untyped-def]
    openai.status = status
    tagger = OpenAITagger(make_settings(tmp_path, openai_base_url=openai.base_url))
    try:
        with pytest.raises(TaggerUnavailable):
            await tagger.suggest(sample_image((10, 10), (1, 2, 3)), "image/jpeg")
    finally:
        await tagger.close()


async def test_an_answer_that_is_not_a_chat_completion_is_unavailable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"unexpected": True})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    tagger = OpenAITagger(make_settings(tmp_path), client=client)
    with pytest.raises(TaggerUnavailable):
        await tagger.suggest(b"jpeg", "image/jpeg")
    await client.aclose()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("cat, dog, sunny beach", ["cat", "dog", "sunny beach"]),
        ('["cat", "dog"]', ["cat", "dog"]),
        ('```json\n["cat", "dog"]\n```', ["cat", "dog"]),
        ("- cat\n- dog", ["cat", "dog"]),
        ("", []),
    ],
)
def test_answers_are_parsed_as_lists_or_json_arrays(content: str, expected: list[str]) -> None:
    assert parse_answer(content) == expected


@given(st.lists(st.text(st.characters(categories=("L",)), min_size=1, max_size=12), max_size=8))
def test_a_comma_list_round_trips(items: list[str]) -> None:
    assert parse_answer(", ".join(items)) == items


def _jpeg(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("size", "orientation"),
    [((400, 200), "landscape"), ((200, 400), "portrait"), ((300, 300), "square")],
)
def test_palette_tells_orientation_and_colour(size: tuple[int, int], orientation: str) -> None:
    found = palette_tags(_jpeg(size, (30, 80, 200)))
    assert found[0] == SuggestedTag(orientation, 95, "orientation")
    assert found[1].name == "blue" and found[1].category == "color"
    assert found[1].confidence == 100


def test_palette_names_at_most_three_colours_over_fifteen_percent() -> None:
    img = Image.new("RGB", (100, 100), (200, 30, 30))
    img.paste((240, 220, 40), (0, 0, 50, 100))
    img.paste((30, 80, 200), (0, 0, 10, 10))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    found = palette_tags(buf.getvalue())
    colours = [t.name for t in found if t.category == "color"]
    assert set(colours) == {"red", "yellow"}


def test_model_input_is_at_most_512_px_jpeg_without_metadata() -> None:
    img = Image.new("RGB", (3000, 1000), (100, 120, 140))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the model must see it upright
    exif[0x010F] = "Camera maker"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), icc_profile=b"\0" * 128, comment=b"secret")
    out = model_jpeg(buf.getvalue(), max_pixels=40_000_000)
    with Image.open(io.BytesIO(out)) as seen:
        assert seen.format == "JPEG"
        assert seen.size == (171, 512)
        assert not seen.getexif()
        assert "icc_profile" not in seen.info and "comment" not in seen.info
