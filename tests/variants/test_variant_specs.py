"""Property-based: the spec grammar, signing and the size rule (docs/http-api.md#variants)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chitram_core.errors import ChitramError, InvalidRequest
from chitram_core.images.formats import ImageFormat
from chitram_core.images.variants import (
    FORMATS,
    MAX_SIDE,
    VariantSigner,
    VariantSpec,
    accepts,
    output_size,
    parse_spec,
    resolve_format,
    spec_for,
)

sides = st.integers(1, MAX_SIDE)


@st.composite
def specs(draw: st.DrawFn) -> VariantSpec:
    fit = draw(st.sampled_from(["contain", "cover"]))
    width = draw(sides if fit == "cover" else st.none() | sides)
    height = draw(sides if fit == "cover" else st.none() | sides)
    return spec_for(
        width=width,
        height=height,
        fit=fit,
        format=draw(st.none() | st.sampled_from(FORMATS)),
        quality=draw(st.none() | st.integers(1, 100)),
    )


@given(specs())
def test_every_spec_round_trips_through_its_canonical_text(spec: VariantSpec) -> None:
    assert parse_spec(str(spec)) == spec


@given(st.text(alphabet=string.ascii_lowercase + string.digits + "-_.%/ ", max_size=40))
def test_any_text_parses_to_itself_or_is_invalid_request(text: str) -> None:
    try:
        spec = parse_spec(text)
    except InvalidRequest:
        return
    assert str(spec) == text


@given(st.text(max_size=80))
def test_arbitrary_unicode_never_raises_anything_else(text: str) -> None:
    try:
        parse_spec(text)
    except ChitramError as exc:
        assert exc.status == 400


@given(specs(), st.lists(st.sampled_from(["-", "--", "-contain"]), max_size=1))
def test_non_canonical_spellings_are_refused(spec: VariantSpec, noise: list[str]) -> None:
    tokens = str(spec).split("-")
    if len(tokens) > 1:
        with pytest.raises(InvalidRequest):
            parse_spec("-".join(reversed(tokens)) if tokens != tokens[::-1] else "-" + str(spec))
    if noise:
        with pytest.raises(InvalidRequest):
            parse_spec(str(spec) + noise[0])


@given(specs(), st.integers(1, 20000), st.integers(1, 20000))
@settings(max_examples=300)
def test_output_is_never_upscaled_and_respects_the_box(
    spec: VariantSpec, width: int, height: int
) -> None:
    rw, rh, ow, oh = output_size(spec, width, height)
    assert 1 <= ow <= rw <= width and 1 <= oh <= rh <= height
    if spec.width is not None:
        assert ow <= spec.width
    if spec.height is not None:
        assert oh <= spec.height
    if spec.fit == "contain":
        assert (ow, oh) == (rw, rh)
        assert abs(ow / oh - width / height) <= width / height * (1 / oh + 1 / ow) + 1e-9 or (
            min(ow, oh) == 1
        )
    elif rw >= spec.width and rh >= spec.height:  # type: ignore[operator]
        assert (ow, oh) == (spec.width, spec.height)


@given(st.text(max_size=30), st.text(max_size=30), st.binary(min_size=1, max_size=40))
def test_signatures_verify_with_any_configured_key_and_only_for_their_path(
    image_id: str, spec: str, key: bytes
) -> None:
    old = VariantSigner([key])
    rotated = VariantSigner([b"new-" + key, key])
    sig = old.sign(image_id, spec)
    assert "=" not in sig and len(sig) == 43
    assert rotated.verify(image_id, spec, sig)
    assert rotated.verify(image_id, spec, rotated.sign(image_id, spec))
    assert not old.verify(image_id, spec, rotated.sign(image_id, spec))
    assert not rotated.verify(image_id, spec + "x", sig)
    assert not rotated.verify(image_id + "x", spec, sig)
    assert not rotated.verify(image_id, spec, None)


@pytest.mark.parametrize(
    ("accept", "avif", "alpha", "expected"),
    [
        ("image/avif,image/webp,*/*", True, False, "avif"),
        ("image/avif,image/webp,*/*", False, False, "webp"),
        ("image/webp", True, True, "webp"),
        ("IMAGE/AVIF;q=0.5", True, False, "avif"),
        ("image/avif;q=0, image/webp;q=0", True, False, "jpeg"),
        ("image/*", True, True, "png"),
        (None, True, False, "jpeg"),
    ],
)
def test_auto_resolution(accept: str | None, avif: bool, alpha: bool, expected: str) -> None:
    spec = parse_spec("w100-auto")
    got = resolve_format(spec, ImageFormat.PNG, accept=accept, has_alpha=alpha, avif=avif)
    assert got == expected


def test_default_format_is_the_originals() -> None:
    spec = parse_spec("w100")
    pick = {
        fmt: resolve_format(spec, fmt, accept="image/avif", has_alpha=True, avif=True)
        for fmt in ImageFormat
    }
    assert pick == {
        ImageFormat.JPEG: "jpeg",
        ImageFormat.PNG: "png",
        ImageFormat.GIF: "png",
        ImageFormat.WEBP: "webp",
        ImageFormat.HEIF: "png",
        ImageFormat.AVIF: "png",
        ImageFormat.JXL: "png",
    }
    assert not accepts("image/avifx", "image/avif")
