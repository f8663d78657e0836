"""The upload's engine job gives exactly the placeholders a separate decode gives.

For a large JPEG the job takes them from the draft its verification decoded instead of decoding
the bytes again; for anything else it decodes them on their own. Either way the BlurHash and
dominant colour must be those of ``compute_placeholders`` (what the sweep and the separate
placeholders job compute), whatever the size, colour mode, EXIF orientation or encoding.
"""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chitram_core.engine.jobs import upload_image
from chitram_core.images.formats import probe
from chitram_core.images.variants import compute_placeholders, shares_verify_draft

MAX_PIXELS = 40_000_000


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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jpegs())
def test_the_upload_job_placeholders_are_those_of_a_separate_decode(data: bytes) -> None:
    info = probe(data)
    work = upload_image(
        data,
        info,
        max_pixels=MAX_PIXELS,
        max_scans=100,
        structure_checked=False,
        placeholders=True,
    )
    assert work.placeholders == compute_placeholders(data, max_pixels=MAX_PIXELS)


def test_sharing_starts_where_both_drafts_are_the_largest_reduction() -> None:
    assert shares_verify_draft(512, 512) and shares_verify_draft(4000, 3000)
    assert not shares_verify_draft(511, 4000) and not shares_verify_draft(300, 200)
