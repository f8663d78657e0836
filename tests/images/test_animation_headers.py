"""The headers an animation budget is read from, for AVIF/HEIF sequences (the track table) and
JPEG XL (the animation flag): the same count however the bytes arrive, and for any damage to
them a clear refusal, never another exception."""

from __future__ import annotations

import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chitram_core.errors import ImageTooLarge, InvalidImage
from chitram_core.images.formats import ImageFormat
from chitram_core.images.metadata import FrameBudget, MetadataScanner
from chitram_core.images.scan.jxl import animated

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sequence(count: int) -> bytes:
    frames = [Image.new("RGB", (32, 24), (i * 40 % 256, 90, 30)) for i in range(count)]
    buf = io.BytesIO()
    frames[0].save(buf, "AVIF", save_all=True, append_images=frames[1:], duration=50)
    return buf.getvalue()


SEQUENCE = _sequence(7)
MOOV = SEQUENCE.index(b"moov") - 4


def _scan(data: bytes, chunks: list[int], budget: FrameBudget | None = None) -> MetadataScanner:
    scanner = MetadataScanner(ImageFormat.AVIF, budget)
    pos = 0
    for size in [*chunks, len(data)]:
        scanner.feed(data[pos : pos + size])
        pos += size
    scanner.finish()
    return scanner


@FAST
@given(st.lists(st.integers(1, 400), max_size=8))
def test_a_sequences_frames_are_counted_the_same_for_any_chunking(chunks: list[int]) -> None:
    scanner = _scan(SEQUENCE, chunks, FrameBudget())
    assert (scanner.frames, scanner.frame_pixels) == (7, 7 * 32 * 24)


@FAST
@given(
    at=st.integers(0, 2_000),
    junk=st.binary(min_size=1, max_size=8),
    chunks=st.lists(st.integers(1, 400), max_size=4),
)
def test_a_damaged_track_table_is_refused_or_counted_never_a_crash(
    at: int, junk: bytes, chunks: list[int]
) -> None:
    where = MOOV + at % (len(SEQUENCE) - MOOV)
    data = SEQUENCE[:where] + junk + SEQUENCE[where + len(junk) :]
    with contextlib.suppress(InvalidImage, ImageTooLarge):  # anything else fails the test
        _scan(data, chunks, FrameBudget(max_frames=50, max_pixels=10**6))


@FAST
@given(st.binary(max_size=64))
def test_the_jpeg_xl_animation_flag_reads_any_bytes_or_refuses_them(tail: bytes) -> None:
    with contextlib.suppress(InvalidImage):
        assert animated(b"\xff\x0a" + tail) in (True, False)
