"""Our BlurHash encoder gives exactly the reference implementation's string (the `blurhash`
package, a straightforward port of Wolt's encoder, used here as an independent reader)."""

from __future__ import annotations

import blurhash as reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from chitram_core.images import blurhash


@st.composite
def small_images(draw: st.DrawFn) -> Image.Image:
    width = draw(st.integers(1, 40))
    height = draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["noise", "flat", "gradient"]))
    image = Image.new("RGB", (width, height))
    if kind == "noise":
        data = draw(st.binary(min_size=width * height * 3, max_size=width * height * 3))
        image = Image.frombytes("RGB", (width, height), data)
    elif kind == "flat":
        colour = draw(st.tuples(*[st.integers(0, 255)] * 3))
        image = Image.new("RGB", (width, height), colour)
    else:
        image.putdata(
            [
                ((x * 255) // width, (y * 255) // height, 128)
                for y in range(height)
                for x in range(width)
            ]
        )
    return image


def reference_hash(image: Image.Image, cx: int, cy: int) -> str:
    rows = [[list(image.getpixel((x, y))) for x in range(image.width)] for y in range(image.height)]
    result: str = reference.encode(rows, cx, cy)
    return result


@settings(max_examples=150, deadline=None)
@given(image=small_images(), cx=st.integers(1, 9), cy=st.integers(1, 9))
def test_the_same_string_as_the_reference_encoder(image: Image.Image, cx: int, cy: int) -> None:
    ours = blurhash.encode(image, cx, cy)
    assert ours == reference_hash(image, cx, cy)
    assert reference.components(ours) == (cx, cy) and len(ours) == 4 + 2 * cx * cy


def test_other_modes_are_encoded_as_their_rgb_conversion() -> None:
    rgba = Image.new("RGBA", (8, 6), (10, 200, 30, 77))
    assert blurhash.encode(rgba) == blurhash.encode(rgba.convert("RGB"))


@pytest.mark.parametrize("components", [(0, 3), (4, 10)])
def test_component_counts_outside_1_to_9_are_refused(components: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="between 1 and 9"):
        blurhash.encode(Image.new("RGB", (4, 4)), *components)
