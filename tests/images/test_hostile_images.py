"""Hostile images are refused before a decoder runs: JPEG scan bombs and WebP canvas bombs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chitram_core import Chitram, Settings
from chitram_core.errors import ImageTooLarge, InvalidImage
from chitram_core.images.formats import JpegScans, count_jpeg_scans, probe
from chitram_core.testing.bombs import (
    jpeg_scan_bomb,
    jpeg_scans,
    progressive_jpeg,
    webp_canvas_bomb,
)

pytestmark = pytest.mark.anyio


def test_an_honest_progressive_jpeg_is_counted_and_passes() -> None:
    data = progressive_jpeg()
    counted = count_jpeg_scans(data, max_scans=100)
    assert counted.progressive
    assert counted.scans == jpeg_scans(data) > 1


def test_a_jpeg_with_more_scans_than_the_limit_is_invalid() -> None:
    bomb = jpeg_scan_bomb(101)
    assert jpeg_scans(bomb) == 101
    with pytest.raises(InvalidImage) as caught:
        count_jpeg_scans(bomb, max_scans=100)
    assert caught.value.code == "INVALID_IMAGE"
    assert count_jpeg_scans(jpeg_scan_bomb(100), max_scans=100).scans == 100


@settings(max_examples=40, deadline=None)
@given(scans=st.integers(10, 60), cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_the_count_does_not_depend_on_how_the_bytes_arrive(scans: int, cuts: list[int]) -> None:
    data = jpeg_scan_bomb(scans)
    counter = JpegScans(max_scans=1000)
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        counter.feed(data[last:cut])
        last = cut
    counter.feed(data[last:])
    assert counter.scans == scans == jpeg_scans(data)


def test_the_webp_canvas_bomb_is_tiny_and_claims_a_huge_canvas() -> None:
    bomb = webp_canvas_bomb()
    info = probe(bomb)
    assert len(bomb) < 64
    assert (info.width, info.height) == (6300, 6300)


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "upload_rate_limit": None,
        "auth_rate_limit": None,
        "image_workers": 1,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_a_scan_bomb_upload_is_refused_before_any_decode(tmp_path: Path) -> None:
    async with Chitram(_settings(tmp_path), background=False) as chitram:
        with pytest.raises(InvalidImage, match="scans"):
            await chitram.images.upload(jpeg_scan_bomb(150), filename="bomb.jpg")
        # Counted in the upload's engine job (off the event loop), ahead of its decode.
        assert chitram.engine.jobs_by_op == {"verify": 1}
        assert chitram.engine.jobs_failed == 1
        image = await chitram.images.upload(progressive_jpeg(), filename="fine.jpg")
        assert image.content_type == "image/jpeg"
        # one engine job: the verification, which also computes the placeholders (§6.3)
        assert chitram.engine.jobs_by_op == {"verify": 2}
        assert image.blurhash is not None and image.dominant_color is not None


async def test_without_placeholders_an_upload_runs_only_the_verification(tmp_path: Path) -> None:
    async with Chitram(_settings(tmp_path, placeholders=False), background=False) as chitram:
        image = await chitram.images.upload(progressive_jpeg(), filename="fine.jpg")
        assert chitram.engine.jobs_by_op == {"verify": 1}
        assert image.blurhash is None and image.dominant_color is None


async def test_the_scan_limit_is_a_setting(tmp_path: Path) -> None:
    async with Chitram(_settings(tmp_path, jpeg_max_scans=200), background=False) as chitram:
        image = await chitram.images.upload(jpeg_scan_bomb(150), filename="many.jpg")
        assert image.width == 32


async def test_a_webp_canvas_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    async with Chitram(_settings(tmp_path), background=False) as chitram:
        with pytest.raises(ImageTooLarge, match="WebP"):
            await chitram.images.upload(webp_canvas_bomb(), filename="bomb.webp")
        assert chitram.engine.jobs_started == 0


async def test_a_webp_within_the_pixel_limit_but_over_the_memory_budget_is_refused(
    tmp_path: Path,
) -> None:
    # Decoding 6300x6300 WebP needs ~480 MB of canvases: more than a 64 MiB budget allows.
    settings = _settings(
        tmp_path, max_pixels_unstreamed=40_000_000, image_memory_budget=64 * 1024 * 1024
    )
    async with Chitram(settings, background=False) as chitram:
        with pytest.raises(ImageTooLarge, match="budget"):
            await chitram.images.upload(webp_canvas_bomb(), filename="bomb.webp")
        assert chitram.engine.jobs_started == 0


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), cut=st.integers(0, 400))
def test_the_scan_counter_never_fails_on_arbitrary_bytes(data: bytes, cut: int) -> None:
    counter = JpegScans(max_scans=5)
    try:
        counter.feed(b"\xff\xd8" + data[:cut])
        counter.feed(data[cut:])
    except InvalidImage:
        assert counter.scans == 6
    else:
        assert counter.scans <= 5
