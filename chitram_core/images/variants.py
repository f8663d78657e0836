"""Responsive variants: URL signing, format negotiation and the renderer.

Everything here is pure (no I/O, no event loop): :func:`render_variant` and
:func:`~chitram_core.images.placeholders.compute_placeholders` are run
by the image engine in a worker process, the rest by the server. See docs/http-api.md#variants
and docs/architecture.md ("Variants").

The spec grammar (:class:`VariantSpec`, :func:`parse_spec`) is Pillow-free and lives in
:mod:`chitram_core.variant_spec`; it is re-exported here for the callers that render.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from collections.abc import Iterable, Sequence
from typing import IO, Any

import attrs
from PIL import Image

from chitram_core.errors import ChitramError, InvalidImage, InvalidRequest
from chitram_core.images.animation import animated_webp, is_animated
from chitram_core.images.codecs import PILLOW_FORMATS
from chitram_core.images.formats import PILLOW_ERRORS, SNIFF_BYTES, ImageFormat, _reason, sniff
from chitram_core.images.profiles import profile_to_keep
from chitram_core.images.thumbnails import _normalise, _orient
from chitram_core.variant_spec import (
    FITS,
    FORMATS,
    MAX_SIDE,
    OUTPUT_FORMATS,
    VariantSpec,
    parse_spec,
    spec_for,
)

__all__ = ["FITS", "FORMATS", "MAX_SIDE", "OUTPUT_FORMATS", "VariantSpec", "parse_spec", "spec_for"]

ALGORITHM_VERSION = 1
"""Bump when rendering changes visibly: it is part of every stored variant's key."""

_MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
}
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif"}
_PILLOW = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}
DEFAULT_QUALITY = {"jpeg": 85, "webp": 80, "avif": 60, "png": 100}
_INPUT_FORMATS = PILLOW_FORMATS


def mime_of(fmt: str) -> str:
    return _MIME[fmt]


def avif_available() -> bool:
    """Whether this Pillow can write AVIF (built in since 11.2 with libavif, or the plugin)."""
    try:
        from PIL import features

        if features.check("avif"):
            return True
    except Exception:  # an old Pillow that does not know the feature name
        pass
    try:
        import pillow_avif  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


# signing ----------------------------------------------------------------------------------

_DERIVE_SALT = b"chitram variant-url keys"
_DERIVE_INFO = b"chitram/variants/hmac-sha256/v1"


def derive_key(secret: str) -> bytes:
    """A per-installation signing key from the JWT secret (HKDF-SHA256, RFC 5869, one block):
    domain-separated, so a variant signature never doubles as anything signed with the JWT key."""
    prk = hmac.new(_DERIVE_SALT, secret.encode(), hashlib.sha256).digest()
    return hmac.new(prk, _DERIVE_INFO + b"\x01", hashlib.sha256).digest()


class VariantSigner:
    """HMAC-SHA256 over ``"{id}/{spec}"``; the first key signs, every key verifies."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a signer needs at least one key")
        self.keys = tuple(keys)

    @classmethod
    def from_settings(cls, variant_keys: Iterable[str], jwt_secret: str) -> VariantSigner:
        keys = [k.encode() for k in variant_keys if k]
        return cls(keys or [derive_key(jwt_secret)])

    @staticmethod
    def _mac(key: bytes, image_id: str, spec: str) -> str:
        digest = hmac.new(key, f"{image_id}/{spec}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, image_id: str, spec: str) -> str:
        return self._mac(self.keys[0], image_id, spec)

    def verify(self, image_id: str, spec: str, signature: str | None) -> bool:
        if not signature:
            return False
        given = signature.encode("ascii", "replace")
        ok = False
        for key in self.keys:  # every key is tried: the time does not say which one matched
            ok |= hmac.compare_digest(self._mac(key, image_id, spec).encode(), given)
        return ok


# format negotiation -----------------------------------------------------------------------


def accepts(accept: str | None, mime: str) -> bool:
    """Whether an ``Accept`` header names ``mime`` (exactly) with a non-zero q."""
    if not accept:
        return False
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if pieces[0].lower() != mime:
            continue
        q = 1.0
        for param in pieces[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def resolve_format(
    spec: VariantSpec,
    original: ImageFormat,
    *,
    accept: str | None,
    has_alpha: bool,
    avif: bool,
) -> str:
    """The output format: the spec's, the original's (GIF becomes PNG), or for ``auto`` AVIF,
    then WebP by ``Accept``, else JPEG (PNG when the image has transparency)."""
    fmt = spec.format
    if fmt == "avif" and not avif:
        raise InvalidRequest(
            "AVIF output is not available on this server (Pillow has no AVIF support; "
            "install Pillow >= 11.2 built with libavif, or the chitram[avif] extra)",
            field="spec",
        )
    if fmt is None:
        return {ImageFormat.JPEG: "jpeg", ImageFormat.WEBP: "webp"}.get(original, "png")
    if fmt != "auto":
        return fmt
    if avif and accepts(accept, "image/avif"):
        return "avif"
    if accepts(accept, "image/webp"):
        return "webp"
    return "png" if has_alpha else "jpeg"


@attrs.frozen
class Adapted:
    """A variant whose format follows its content (no format in the spec, or ``auto``): the
    renderer encodes the resized pixels both ways and keeps the smaller, a lossless one
    (``lossless``: WebP, or PNG when the client takes no WebP) unless a lossy one (``lossy``:
    AVIF, WebP or JPEG by ``Accept``) is clearly smaller, so flat graphics stay exact and small
    and photos get a photo codec. A JPEG source is a photo: only the lossy one is tried. When
    nothing was resized and the result would be larger than the original, the original's bytes
    are the variant, if the client takes its format: JPEG, PNG and GIF always, WebP and AVIF
    when they are candidates, HEIC and JPEG XL when ``original`` names them. Otherwise a result
    larger than the original is the smaller candidate, encoded again at lower qualities when
    the spec sets none (:func:`_within`)."""

    lossy: str
    lossless: str
    original: str | None = None
    """``heif`` or ``jxl``: the original is in that format and the client named it in
    ``Accept``, so its bytes may stand in (other clients cannot decode it)."""

    @property
    def token(self) -> str:
        """What the variant's key holds of it (one stored object per candidate set)."""
        pair = f"{self.lossy}.{self.lossless}"
        return f"{pair}.{self.original}" if self.original else pair


LOSSLESS_BONUS = 1.1
"""A lossless encoding up to this many times the lossy one's size is kept (it is exact)."""


_NAMED_ONLY = {ImageFormat.HEIF: ("image/heic", "image/heif"), ImageFormat.JXL: ("image/jxl",)}
"""Original formats a client takes only when its ``Accept`` names them (never by ``*/*``)."""


def adapted_formats(
    accept: str | None, *, avif: bool, original: ImageFormat | None = None
) -> Adapted:
    """The candidate formats of a content-adapted variant for this ``Accept`` header (and, for
    an ``original`` in HEIC or JPEG XL, whether the client takes that format too)."""
    webp = accepts(accept, "image/webp")
    lossy = "avif" if avif and accepts(accept, "image/avif") else "webp" if webp else "jpeg"
    named = _NAMED_ONLY.get(original) if original is not None else None
    takes_original = named is not None and any(accepts(accept, mime) for mime in named)
    return Adapted(
        lossy=lossy,
        lossless="webp" if webp else "png",
        original=original.value if takes_original and original is not None else None,
    )


def may_have_alpha(head: bytes, fmt: ImageFormat) -> bool:
    """From the header alone: could the image have transparent pixels? (errs towards yes)"""
    if fmt is ImageFormat.JPEG:
        return False
    if fmt is ImageFormat.PNG:
        if len(head) > 25 and head[25] in (4, 6):  # grey+alpha, RGBA
            return True
        idat = head.find(b"IDAT")
        trns = head.find(b"tRNS")
        return trns != -1 and (idat == -1 or trns < idat)
    if fmt is ImageFormat.WEBP:
        chunk = head[12:16]
        if chunk == b"VP8X":
            return len(head) > 20 and bool(head[20] & 0x10)
        if chunk == b"VP8L":
            return len(head) > 24 and bool(head[24] & 0x10)  # alpha_is_used bit
        return False
    return True  # GIF: transparency is per frame; assume it


# rendering --------------------------------------------------------------------------------


@attrs.frozen
class RenderedVariant:
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    width: int
    height: int
    content_type: str


def output_size(spec: VariantSpec, width: int, height: int) -> tuple[int, int, int, int]:
    """``(resize_w, resize_h, out_w, out_h)`` for an upright ``width`` x ``height`` image:
    resize to the first pair, then (cover) centre-crop to the second. Never upscales."""
    # contain: fit inside the box. cover: fill the box, then crop the overflow.
    if spec.fit == "cover":
        assert spec.width is not None and spec.height is not None
        scale = min(max(spec.width / width, spec.height / height), 1.0)
    else:
        scale = min(
            spec.width / width if spec.width else 1.0,
            spec.height / height if spec.height else 1.0,
            1.0,
        )
    rw, rh = max(1, round(width * scale)), max(1, round(height * scale))
    if spec.fit == "cover":
        assert spec.width is not None and spec.height is not None
        # The box's shape is kept: when the image is smaller than the box, the largest box of
        # that shape inside it (so ``cover`` never upscales and never changes aspect).
        shrink = min(rw / spec.width, rh / spec.height, 1.0)
        ow = min(rw, max(1, round(spec.width * shrink)))
        oh = min(rh, max(1, round(spec.height * shrink)))
        return rw, rh, ow, oh
    return rw, rh, rw, rh


def render_variant(
    source: bytes | IO[bytes],
    spec: VariantSpec,
    *,
    max_pixels: int,
    draft: bool = True,
    adapt: Adapted | None = None,
) -> RenderedVariant:
    """Render ``spec`` (whose format is resolved, not ``auto``), or with ``adapt`` in the format
    that suits the content (see :class:`Adapted`); SYNC, for the engine.

    JPEG is decoded with ``draft()`` at the smallest 1/1..1/8 scale still covering the target
    (shrink on load), the rest with ``reduce()`` then Lanczos; EXIF orientation is applied;
    an animated GIF, WebP, PNG or AVIF gives an animated WebP when WebP is the spec's format or one
    that ``adapt`` allows (:mod:`~chitram_core.images.animation`), else its first frame.
    ``draft=False`` is the naive path (benchmark only).
    """
    assert adapt is not None or spec.format in OUTPUT_FORMATS, spec
    fileobj: IO[bytes] = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        wants_webp = spec.format == "webp" or (
            adapt is not None and "webp" in (adapt.lossy, adapt.lossless)
        )
        if wants_webp:
            moving = _animated(fileobj, spec, max_pixels)
            if moving is not None:
                return moving
            fileobj.seek(0)
        if adapt is not None:
            return _render_adapted(fileobj, spec, max_pixels, draft, adapt)
        return _render(fileobj, spec, max_pixels, draft)
    except ChitramError as exc:
        if isinstance(exc, InvalidImage):
            raise
        raise InvalidImage(exc.message, **exc.details) from None
    except PILLOW_ERRORS as exc:
        reason = _reason(exc)
        raise InvalidImage(f"Cannot render this variant: {reason}", reason=reason) from None


_ANIMATED = (ImageFormat.GIF, ImageFormat.WEBP, ImageFormat.PNG, ImageFormat.AVIF)


def _animated(fileobj: IO[bytes], spec: VariantSpec, max_pixels: int) -> RenderedVariant | None:
    """An animated WebP of an animated source; None for a still image."""
    if sniff(fileobj.read(SNIFF_BYTES)) not in _ANIMATED:
        return None
    fileobj.seek(0)
    formats = [fmt.pillow_name for fmt in _ANIMATED if fmt.pillow_name in _INPUT_FORMATS]
    with Image.open(fileobj, formats=formats) as img:
        if not is_animated(img):
            return None
        if img.width * img.height > max_pixels:
            raise InvalidImage(
                f"The image has {img.width * img.height} pixels, more than the limit of "
                f"{max_pixels}",
                max_pixels=max_pixels,
            )
        rw, rh, ow, oh = output_size(spec, img.width, img.height)
        quality = spec.quality if spec.quality is not None else DEFAULT_QUALITY["webp"]
        data = animated_webp(img, (rw, rh), (ow, oh), quality=quality, lossless=False)
    return RenderedVariant(data, ow, oh, _MIME["webp"])


def _render(fileobj: IO[bytes], spec: VariantSpec, max_pixels: int, draft: bool) -> RenderedVariant:
    fmt = spec.format
    assert fmt is not None
    frame, icc, _, _ = _frame(fileobj, spec, max_pixels, draft, keep_alpha=fmt != "jpeg")
    return _encode(frame, fmt, spec.quality, icc)


_PASSTHROUGH = {
    "JPEG": "jpeg",
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "AVIF": "avif",
    "HEIF": "heif",
    "JXL": "jxl",
}
"""Source formats (Pillow's names) whose bytes may stand in for a still variant."""
_EVERY_CLIENT = ("jpeg", "png", "gif")
"""Formats every client decodes, named in its ``Accept`` or not."""


def _render_adapted(
    fileobj: IO[bytes], spec: VariantSpec, max_pixels: int, draft: bool, adapt: Adapted
) -> RenderedVariant:
    frame, icc, resized, source_format = _frame(fileobj, spec, max_pixels, draft, keep_alpha=True)
    alpha = frame.mode in ("RGBA", "LA") and _min_alpha(frame) < 255
    if frame.mode in ("RGBA", "LA") and not alpha:
        frame = frame.convert(frame.mode[:-1])  # an opaque alpha channel is only weight
    candidates: list[RenderedVariant] = []
    lossless: RenderedVariant | None = None
    if source_format not in ("JPEG", "MPO") or alpha:
        lossless = _encode(frame, adapt.lossless, None, icc, lossless=True)
        candidates.append(lossless)
    if not (alpha and adapt.lossy == "jpeg"):
        candidates.append(_encode(frame, adapt.lossy, spec.quality, icc))
    best = min(candidates, key=lambda c: len(c.data))
    if lossless is not None and len(lossless.data) <= LOSSLESS_BONUS * len(best.data):
        best = lossless
    fileobj.seek(0, io.SEEK_END)
    budget = fileobj.tell()  # the original's size
    if len(best.data) > budget:  # exact pixels are not worth more bytes than the original
        best = min(candidates, key=lambda c: len(c.data))
    passthrough = _PASSTHROUGH.get(source_format)
    if (
        not resized
        and passthrough is not None
        and passthrough in (adapt.lossy, adapt.lossless, adapt.original, *_EVERY_CLIENT)
    ):
        fileobj.seek(0)
        original = fileobj.read()
        if len(best.data) >= len(original):
            mime = ImageFormat(passthrough).mime
            return RenderedVariant(original, best.width, best.height, mime)
    if len(best.data) > budget and spec.quality is None and not (alpha and adapt.lossy == "jpeg"):
        best = _within(frame, adapt.lossy, icc, budget, best)
    return best


LOWER_QUALITIES = (15, 30, 45)
"""How far below its default quality a lossy codec may go to fit the original's size."""
MIN_QUALITY = 20


def _within(
    frame: Image.Image, fmt: str, icc: object, budget: int, best: RenderedVariant
) -> RenderedVariant:
    """``best``, or an encoding of ``frame`` in ``fmt`` at a lower quality, until one is at most
    ``budget`` bytes: a resized variant of a strongly compressed original (a JPEG saved at
    quality 50, say) would otherwise be larger than the original it was made from. The lowest
    quality tried is the last word: a variant may still be larger when no encoding fits."""
    for step in LOWER_QUALITIES:
        quality = DEFAULT_QUALITY[fmt] - step
        if quality < MIN_QUALITY:
            break
        again = _encode(frame, fmt, quality, icc)
        if len(again.data) < len(best.data):
            best = again
        if len(best.data) <= budget:
            break
    return best


def _min_alpha(frame: Image.Image) -> int:
    low = frame.getchannel("A").getextrema()[0]
    assert isinstance(low, int)
    return low


def _frame(
    fileobj: IO[bytes], spec: VariantSpec, max_pixels: int, draft: bool, *, keep_alpha: bool
) -> tuple[Image.Image, object, bool, str]:
    """The upright, resized and cropped pixels of ``spec``; with the ICC profile, whether any
    resize or crop happened, and the source's Pillow format name."""
    with Image.open(fileobj, formats=_INPUT_FORMATS) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise InvalidImage(
                f"The image has {width * height} pixels, more than the limit of {max_pixels}",
                max_pixels=max_pixels,
            )
        orientation = img.getexif().get(0x0112, 1)
        icc = img.info.get("icc_profile")
        turned = orientation in (5, 6, 7, 8)
        upright = (height, width) if turned else (width, height)
        rw, rh, ow, oh = output_size(spec, *upright)
        target = (rh, rw) if turned else (rw, rh)  # in the stored orientation
        if draft and img.format in ("JPEG", "MPO"):
            img.draft(img.mode if img.mode in ("RGB", "L") else None, target)
        else:
            img.load()
        source_format = str(img.format)
        frame = _normalise(img, keep_alpha=keep_alpha)
        # Any change to the pixels' geometry (an upright turn included), or a still variant of
        # an animation: the original's bytes cannot stand in for such a variant.
        resized = (
            frame.size != target
            or (ow, oh) != upright
            or orientation not in (0, 1)
            or is_animated(img)
        )
        if frame.size != target:
            frame = frame.resize(
                target,
                Image.Resampling.LANCZOS,
                reducing_gap=2.0 if draft else None,
            )
        frame = _orient(frame, orientation)
        if (ow, oh) != frame.size:
            left, top = (frame.width - ow) // 2, (frame.height - oh) // 2
            frame = frame.crop((left, top, left + ow, top + oh))
        if frame is img:
            frame = img.copy()  # its pixels, loaded while the file is still open
        return frame, icc, resized, source_format


def _encode(
    img: Image.Image, fmt: str, quality: int | None, icc: object, *, lossless: bool = False
) -> RenderedVariant:
    options: dict[str, Any] = {}
    # None too: some encoders (PNG, AVIF) would otherwise write the profile left in img.info.
    options["icc_profile"] = profile_to_keep(icc, img.mode)
    q = quality if quality is not None else DEFAULT_QUALITY[fmt]
    if fmt == "jpeg":
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        options.update(quality=q, optimize=True, progressive=img.width * img.height > 10_000)
    elif fmt == "webp" and lossless:
        options.update(lossless=True, quality=80, method=4)
    elif fmt == "webp":
        options.update(quality=q, method=4)
    elif fmt == "avif":
        options.update(quality=q, speed=8)
    else:
        options.update(compress_level=6)
    buf = io.BytesIO()
    img.save(buf, format=_PILLOW[fmt], **options)
    return RenderedVariant(buf.getvalue(), img.width, img.height, _MIME[fmt])


def variant_cost_side(spec: VariantSpec, width: int, height: int) -> int:
    """The longest side the renderer decodes towards (for the engine's memory reservation)."""
    rw, rh, _, _ = output_size(spec, max(width, height), max(width, height))
    return max(rw, rh, 1)


def variant_key(sha256: str, spec: VariantSpec, adapt: Adapted | None = None) -> str:
    """Where a rendered variant lives; ``spec`` has its format resolved, or ``adapt`` says
    which pair of formats the content chose between (the key then has no extension: the row
    holds the content type)."""
    base = f"variants/{sha256[:2]}/{sha256}/v{ALGORITHM_VERSION}-"
    if adapt is not None:
        return f"{base}{spec.with_format(None)}-{adapt.token}"
    assert spec.format in OUTPUT_FORMATS
    return f"{base}{spec}.{EXTENSIONS[spec.format]}"


__all__ = [
    "Adapted",
    "RenderedVariant",
    "VariantSigner",
    "VariantSpec",
    "accepts",
    "adapted_formats",
    "avif_available",
    "derive_key",
    "may_have_alpha",
    "output_size",
    "parse_spec",
    "render_variant",
    "resolve_format",
    "spec_for",
    "variant_key",
]
