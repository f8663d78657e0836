"""The conformance suite for ``chitram.moderators`` plugins: subclass it and provide moderators.

::

    import pytest
    from chitram_core.testing.moderator_conformance import ModeratorConformance

    class TestMyModerator(ModeratorConformance):
        @pytest.fixture
        async def allowing(self):       # a moderator whose service allows everything
            ...
        @pytest.fixture
        async def rejecting(self):      # ... rejects everything, with a reason
            ...
        @pytest.fixture
        async def unavailable(self):    # ... is down (None skips the outage tests)
            ...

The suite hands the moderator what Chitram hands it: a :class:`ModerationInput` whose image is a
metadata-free JPEG of at most 1024 px a side, in several shapes. It checks that the answer is a
:class:`Verdict` (a reject carries a reason), that an outage is reported as
:class:`~chitram_core.errors.ModeratorUnavailable` and that concurrent checks are answered
independently. It does not judge what the moderator decides for real content.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator

import anyio
import pytest
from PIL import Image

from chitram_core.errors import ModeratorUnavailable
from chitram_core.images.model_input import model_jpeg
from chitram_core.moderation import MODERATION_MAX_SIDE, ModerationInput, Moderator, Verdict

SAMPLES = {
    "landscape": ((1800, 600), (200, 30, 30)),
    "portrait": ((300, 700), (30, 80, 200)),
    "tiny": ((3, 2), (40, 160, 60)),
}


def sample_input(sample: str = "landscape", owner_id: str | None = "user-1") -> ModerationInput:
    """A ``ModerationInput`` as the moderation gate makes it."""
    (width, height), color = SAMPLES[sample]
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    original = buf.getvalue()
    return ModerationInput(
        image=model_jpeg(original, max_pixels=40_000_000, max_side=MODERATION_MAX_SIDE),
        content_type="image/png",
        width=width,
        height=height,
        size=len(original),
        sha256=hashlib.sha256(original).hexdigest(),
        filename=f"{sample}.png",
        owner_id=owner_id,
    )


class ModeratorConformance:
    """Behaviour shared by every moderator; a subclass overrides the fixtures."""

    pytestmark = [pytest.mark.anyio]
    timeout = 30.0
    """Seconds one ``check`` may take in this suite."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def allowing(self) -> AsyncIterator[Moderator]:
        raise NotImplementedError("override the `allowing` fixture")
        yield  # pragma: no cover

    @pytest.fixture
    async def rejecting(self) -> AsyncIterator[Moderator]:
        raise NotImplementedError("override the `rejecting` fixture")
        yield  # pragma: no cover

    @pytest.fixture
    async def unavailable(self) -> AsyncIterator[Moderator | None]:
        """The moderator with its service down; None skips the outage test."""
        yield None

    async def _check(self, moderator: Moderator, item: ModerationInput) -> Verdict:
        with anyio.fail_after(self.timeout):
            return await moderator.check(item)

    async def test_is_a_moderator_with_a_name(self, allowing: Moderator) -> None:
        assert isinstance(allowing, Moderator)
        assert isinstance(allowing.name, str) and allowing.name

    @pytest.mark.parametrize("sample", sorted(SAMPLES))
    async def test_allows_with_an_allow_verdict(self, allowing: Moderator, sample: str) -> None:
        verdict = await self._check(allowing, sample_input(sample))
        assert isinstance(verdict, Verdict)
        assert verdict.allowed and verdict.decision == "allow"

    @pytest.mark.parametrize("sample", sorted(SAMPLES))
    async def test_rejects_with_a_reason(self, rejecting: Moderator, sample: str) -> None:
        verdict = await self._check(rejecting, sample_input(sample))
        assert isinstance(verdict, Verdict)
        assert not verdict.allowed and verdict.decision == "reject"
        assert isinstance(verdict.reason, str) and verdict.reason.strip()

    async def test_an_anonymous_upload_is_judged_too(self, allowing: Moderator) -> None:
        verdict = await self._check(allowing, sample_input("tiny", owner_id=None))
        assert verdict.allowed

    async def test_concurrent_checks_each_get_a_verdict(self, allowing: Moderator) -> None:
        verdicts: list[Verdict] = []

        async def one(sample: str) -> None:
            verdicts.append(await self._check(allowing, sample_input(sample)))

        async with anyio.create_task_group() as tg:
            for sample in sorted(SAMPLES) * 2:
                tg.start_soon(one, sample)
        assert len(verdicts) == 2 * len(SAMPLES) and all(v.allowed for v in verdicts)

    async def test_an_outage_is_reported_as_unavailable(
        self, unavailable: Moderator | None
    ) -> None:
        if unavailable is None:
            pytest.skip("no unavailable moderator given")
        with pytest.raises(ModeratorUnavailable):
            await self._check(unavailable, sample_input())
