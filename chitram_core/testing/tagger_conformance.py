"""The conformance suite for ``chitram.taggers`` plugins: subclass it and provide a ``tagger``.

::

    import pytest
    from chitram_core.testing.tagger_conformance import TaggerConformance

    class TestMyTagger(TaggerConformance):
        @pytest.fixture
        async def tagger(self):
            tagger = my_plugin.create_tagger(Settings(...))
            yield tagger
            await tagger.close()

The suite hands the tagger what Chitram hands it: a JPEG of at most 512 px with no metadata
(made by ``chitram_core.images.model_input.model_jpeg``), in several shapes and colours, and
checks the answer's shape: ``SuggestedTag`` values whose names Chitram can store after cleaning
and whose confidences are 0..100. It does not judge what the tags say. Override
``unavailable_tagger`` to also check that an outage is reported as ``TaggerUnavailable``.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence

import anyio
import pytest
from PIL import Image

from chitram_core.errors import TaggerUnavailable
from chitram_core.images.model_input import model_jpeg
from chitram_core.models import Check, SuggestedTag
from chitram_core.taggers import Tagger
from chitram_core.tags import names


def sample_image(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    """A picture as Chitram would send it to a tagger (≤ 512 px JPEG, no metadata)."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return model_jpeg(buf.getvalue(), max_pixels=40_000_000)


SAMPLES = {
    "landscape-red": ((900, 400), (200, 30, 30)),
    "portrait-blue": ((300, 700), (30, 80, 200)),
    "square-white": ((256, 256), (245, 245, 245)),
    "tiny-green": ((3, 2), (40, 160, 60)),
}


class TaggerConformance:
    """Behaviour shared by every tagger; a subclass overrides :meth:`tagger`."""

    pytestmark = [pytest.mark.anyio]
    timeout = 60.0
    """Seconds one ``suggest`` may take in this suite."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def tagger(self) -> AsyncIterator[Tagger]:
        raise NotImplementedError("a TaggerConformance subclass must override the `tagger` fixture")
        yield  # pragma: no cover

    @pytest.fixture
    async def unavailable_tagger(self) -> AsyncIterator[Tagger | None]:
        """The same tagger pointed at a service that is down; None skips the outage test."""
        yield None

    async def _suggest(self, tagger: Tagger, sample: str) -> Sequence[SuggestedTag]:
        size, color = SAMPLES[sample]
        with anyio.fail_after(self.timeout):
            return await tagger.suggest(sample_image(size, color), "image/jpeg")

    async def test_is_a_tagger_with_a_name(self, tagger: Tagger) -> None:
        assert isinstance(tagger, Tagger)
        assert isinstance(tagger.name, str) and tagger.name

    @pytest.mark.parametrize("sample", sorted(SAMPLES))
    async def test_suggestions_are_suggested_tags(self, tagger: Tagger, sample: str) -> None:
        suggestions = await self._suggest(tagger, sample)
        assert isinstance(suggestions, Sequence)
        for s in suggestions:
            assert isinstance(s, SuggestedTag)
            assert isinstance(s.confidence, int) and 0 <= s.confidence <= 100
            assert s.category is None or isinstance(s.category, str)

    async def test_names_survive_cleaning(self, tagger: Tagger) -> None:
        """At least one suggestion is a name Chitram can store (after trimming, lower-casing
        and dropping punctuation)."""
        suggestions = await self._suggest(tagger, "landscape-red")
        assert suggestions, "a tagger should suggest something for a plain red picture"
        assert any(names.clean_suggestion(s.name) for s in suggestions)

    async def test_the_same_image_twice_is_fine(self, tagger: Tagger) -> None:
        first = await self._suggest(tagger, "portrait-blue")
        second = await self._suggest(tagger, "portrait-blue")
        assert isinstance(first, Sequence) and isinstance(second, Sequence)

    async def test_health_is_a_check(self, tagger: Tagger) -> None:
        check = await tagger.health()
        assert isinstance(check, Check)
        assert check.status in ("healthy", "degraded", "unhealthy")

    async def test_an_outage_is_tagger_unavailable(self, unavailable_tagger: Tagger | None) -> None:
        if unavailable_tagger is None:
            pytest.skip("no unavailable_tagger fixture: the outage behaviour is not checked")
        with pytest.raises(TaggerUnavailable):
            await self._suggest(unavailable_tagger, "square-white")
        check = await unavailable_tagger.health()
        assert check.status == "unhealthy"
