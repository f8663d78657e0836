"""The upload's engine job gives the placeholders and thumbnail a separate decode gives.

Without the thumbnail, a large JPEG's placeholders come from the draft its verification decoded
instead of decoding the bytes again; for anything else they are decoded on their own. Either way
the BlurHash and dominant colour must be exactly those of ``compute_placeholders`` (what the
sweep and the separate placeholders job compute), whatever the size, colour mode, EXIF
orientation or encoding.

With the thumbnail (the default), a JPEG is decoded once, at the thumbnail's scale: the
thumbnail is exactly ``render_thumbnail``'s and the placeholders come from its pixels.
"""

from __future__ import annotations

import io
from typing import Any

import blurhash as reference_blurhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chitram_core.engine.work import UploadWork, upload_image
from chitram_core.images.formats import probe
from chitram_core.images.placeholders import (
    compute_placeholders,
    placeholders_of_pixels,
    shares_verify_draft,
)
from chitram_core.images.thumbnails import (
    ThumbnailParams,
    finish,
    render_thumbnail,
    shrink_on_load,
)

MAX_PIXELS = 40_000_000
SAME_PICTURE_LEVELS = 20
"""The mean distance (0-255 levels a channel, over the 32x24 picture a BlurHash decodes to)
allowed between the upload job's placeholders and a separate decode's: at most 14.6 over every
size, mode, orientation, quality and encoding of :func:`jpegs` (1,800 inputs, random seeds);
placeholders left unrotated (EXIF orientation 6 or 8) are 24 to 97 away."""


@st.composite
def jpegs(draw: st.DrawFn) -> bytes:
    # Around the sharing threshold (512 on the short side) and well past it.
    width = draw(st.sampled_from([300, 511, 512, 513, 700, 1030]))
    height = draw(st.sampled_from([200, 511, 512, 640, 900]))
    mode = draw(st.sampled_from(["RGB", "L", "CMYK"]))
    seed = draw(st.integers(0, 255))
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    r, g, b = image.split()
    image = Image.merge("RGB", (r, g.point(lambda v: (v + seed) % 256), b.transpose(1)))
    image = image.convert(mode)
    exif = Image.Exif()
    orientation = draw(st.sampled_from([None, 1, 3, 6, 8]))
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(
        out,
        "JPEG",
        quality=draw(st.sampled_from([60, 90])),
        progressive=draw(st.booleans()),
        exif=exif.tobytes(),
    )
    return out.getvalue()


def _upload_job(data: bytes, **options: Any) -> UploadWork:
    """The upload's engine job as the service runs it, with the placeholders."""
    return upload_image(
        data,
        probe(data),
        max_pixels=MAX_PIXELS,
        max_scans=100,
        strip=False,
        placeholders=True,
        **options,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jpegs())
def test_the_upload_job_placeholders_are_those_of_a_separate_decode(data: bytes) -> None:
    work = _upload_job(data)
    assert work.placeholders == compute_placeholders(data, max_pixels=MAX_PIXELS)


def test_sharing_starts_where_both_drafts_are_the_largest_reduction() -> None:
    assert shares_verify_draft(512, 512) and shares_verify_draft(4000, 3000)
    assert not shares_verify_draft(511, 4000) and not shares_verify_draft(300, 200)


def _blurhash_pixels(value: str) -> list[int]:
    rows = reference_blurhash.decode(value, 32, 24)
    return [channel for row in rows for pixel in row for channel in pixel[:3]]


def _thumbnail_pixels(data: bytes, params: ThumbnailParams) -> Image.Image:
    """What the thumbnail is encoded from: a decode of its own, shrunk on load and finished."""
    with Image.open(io.BytesIO(data)) as img:
        orientation = img.getexif().get(0x0112, 1)
        shrink_on_load(img, params)
        img.load()
        return finish(img, params, orientation).copy()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jpegs())
def test_with_the_thumbnail_one_decode_gives_the_thumbnail_of_a_separate_render(
    data: bytes,
) -> None:
    """A JPEG's job verifies at the thumbnail's scale and finishes the thumbnail from those
    pixels: the very bytes ``render_thumbnail`` makes from its own decode. Its placeholders are
    those of the thumbnail's pixels. They describe the same picture as the 1/8 draft's of a
    separate decode, but not to the level: BlurHash's AC terms are quantised relative to the
    largest one, so sharp edges (these gradients wrap around) move them."""
    params = ThumbnailParams()
    work = _upload_job(data, thumbnail=params, thumbnail_within=60.0)
    assert work.thumbnail == render_thumbnail(data, params, max_pixels=MAX_PIXELS)
    assert work.placeholders == placeholders_of_pixels(_thumbnail_pixels(data, params))
    separate = compute_placeholders(data, max_pixels=MAX_PIXELS)
    ours = _blurhash_pixels(work.placeholders.blurhash)
    theirs = _blurhash_pixels(separate.blurhash)
    differences = [abs(a - b) for a, b in zip(ours, theirs, strict=True)]
    assert sum(differences) / len(differences) <= SAME_PICTURE_LEVELS
