"""The image work the engine runs in its workers, and what each piece may cost in memory.

(Not the durable job runner, :mod:`chitram_core.jobs`: these are the functions its jobs and
the upload ask the engine to run.) They are plain module-level functions of picklable
arguments (bytes in, small values out), so they run the same in a worker process, a thread or
a test. A large file comes in as a :class:`LocalFile` the job reads itself, so its bytes never
pass through the server process (see :func:`chitram_core.engine.local.local_file`). Their costs
are deliberately pessimistic: the budget is a promise that decoding never takes the server past
it.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path

import attrs
from PIL import Image

from chitram_core.errors import ChitramError, InvalidImage
from chitram_core.images.formats import (
    HEAD_BYTES,
    JPEG_DRAFT_SCALE,
    ImageFormat,
    ImageInfo,
    count_jpeg_scans,
    jpeg_progressive,
    verify,
)
from chitram_core.images.metadata import Edit, FrameBudget, MetadataScanner
from chitram_core.images.model_input import model_jpeg
from chitram_core.images.placeholders import (
    Placeholders,
    compute_placeholders,
    placeholders_of,
    placeholders_of_pixels,
    shares_verify_draft,
)
from chitram_core.images.thumbnails import (
    RenderedThumbnail,
    ThumbnailParams,
    encode,
    finish,
    render_thumbnail,
    shrink_on_load,
)
from chitram_core.images.variants import Adapted, RenderedVariant, VariantSpec, render_variant

MiB = 1024 * 1024


@attrs.frozen
class LocalFile:
    """Image bytes a job reads from a file on this host instead of receiving them through the
    engine's pipe: the server streams a large upload to disk and never holds it whole (its
    copy, and the pickled message, would be the file's size twice in the server's memory)."""

    path: str


JobInput = bytes | LocalFile
"""What a job that reads a whole image is given: the bytes, or the file holding them."""


def load(data: JobInput) -> bytes:
    """The bytes of a job's input (read here, in the engine, for a :class:`LocalFile`)."""
    if isinstance(data, LocalFile):
        return Path(data.path).read_bytes()
    return data


BASE_COST = 8 * MiB
"""Decoder state, tables and Python objects every job needs whatever the image."""


def decode_cost(
    info: ImageInfo,
    *,
    file_size: int,
    progressive: bool = False,
    thumbnail_size: int | None = None,
) -> int:
    """Worst-case bytes a job decoding ``info`` needs: verification, or a thumbnail when
    ``thumbnail_size`` is given. Pillow keeps 4 bytes a pixel for RGB(A), 1 for L/P."""
    pixels = info.pixels
    cost = BASE_COST + 2 * file_size  # the bytes received, and Pillow's view of them
    fmt = info.format
    if fmt is ImageFormat.JPEG:
        if progressive:
            # libjpeg keeps every DCT coefficient of a progressive image (2 bytes a sample,
            # up to 3 samples a pixel), whatever the draft scale.
            cost += pixels * 6
        if thumbnail_size is None:
            cost += pixels * 4 // (JPEG_DRAFT_SCALE * JPEG_DRAFT_SCALE)
        else:
            # draft() decodes at the smallest 1/1..1/8 scale still covering the box; at
            # worst a little over 4x the box in each dimension, then resampling copies.
            covered = min(pixels, max(pixels // 64, 64 * thumbnail_size * thumbnail_size))
            cost += covered * 4 * 3
        return cost
    if fmt is ImageFormat.WEBP:
        # libwebp's animation decoder, which Pillow builds in ``open``, keeps two RGBA
        # canvases; the decoded frame is a third, the thumbnail's copies a fourth.
        return cost + pixels * 4 * (4 if thumbnail_size is not None else 3)
    if fmt.isobmff or fmt is ImageFormat.JXL:
        # libheif, libavif and libjxl decode whole: the coded planes (up to 16 bits, 4
        # channels), then Pillow's 8-bit copy; the thumbnail's copies on top.
        return cost + pixels * 8 + pixels * 4 + (pixels * 4 if thumbnail_size is not None else 0)
    if fmt is ImageFormat.PNG and thumbnail_size is None:
        return cost  # verification inflates the pixel data row by row (check_png_pixels)
    # PNG or GIF decoded whole (up to 8 bytes a pixel for 16-bit RGBA), then resampled.
    return cost + pixels * 8 + pixels * 4


def verify_image(
    data: bytes,
    info: ImageInfo,
    *,
    max_pixels: int,
    max_scans: int,
    structure_checked: bool,
    decoded: Callable[[Image.Image], None] | None = None,
    shrink: Callable[[Image.Image], None] | None = None,
) -> None:
    """Prove ``data`` decodes as ``info`` says (see :func:`~chitram_core.images.formats.verify`,
    which also explains ``decoded`` and ``shrink``)."""
    if info.format is ImageFormat.JPEG and not structure_checked:
        count_jpeg_scans(data, max_scans)
    verify(
        io.BytesIO(data),
        info,
        max_pixels=max_pixels,
        structure_checked=structure_checked,
        decoded=decoded,
        shrink=shrink,
    )


def thumbnail_image(
    data: JobInput, params: ThumbnailParams, *, max_pixels: int
) -> RenderedThumbnail:
    """Render a thumbnail (see :func:`~chitram_core.images.thumbnails.render_thumbnail`)."""
    return render_thumbnail(load(data), params, max_pixels=max_pixels)


# variants and placeholders


def variant_cost(info: ImageInfo, *, file_size: int, progressive: bool, side: int) -> int:
    """Decode cost towards a ``side``-pixel box, plus the resized copies and the encoder's
    buffers (AVIF/WebP encoders keep a few frame-sized planes)."""
    out = min(info.pixels, side * side)
    return decode_cost(info, file_size=file_size, progressive=progressive, thumbnail_size=side) + (
        out * 4 * 4
    )


def variant_image(
    data: JobInput, spec: VariantSpec, *, max_pixels: int, adapt: Adapted | None = None
) -> RenderedVariant:
    """Render a variant (see :func:`~chitram_core.images.variants.render_variant`)."""
    return render_variant(load(data), spec, max_pixels=max_pixels, adapt=adapt)


def placeholders_image(data: JobInput, *, max_pixels: int) -> Placeholders:
    """BlurHash and dominant colour from a tiny draft decode."""
    return compute_placeholders(load(data), max_pixels=max_pixels)


@attrs.frozen
class UploadWork:
    """What an upload's one engine job made besides verifying: each part None when it was not
    asked for, failed or was skipped (the caller then falls back to separate work). ``edits``:
    the metadata edits its structure scan planned (None when metadata is kept)."""

    placeholders: Placeholders | None = None
    thumbnail: RenderedThumbnail | None = None
    edits: list[Edit] | None = None


def scan_structure(
    data: bytes,
    info: ImageInfo,
    *,
    strip: bool,
    max_scans: int,
    frames: FrameBudget | None = None,
) -> list[Edit] | None:
    """The walk over the whole file that decoding does not do: a JPEG's scans counted (more than
    ``max_scans`` is refused) and its frame headers checked against the first one, which the
    reservation was made from (:func:`~chitram_core.images.formats.jpeg_progressive`); with
    ``strip``, the container structure walked and the metadata edits planned
    (:class:`~chitram_core.images.metadata.MetadataScanner`, which refuses a malformed
    structure). With ``frames``, the walk runs whatever ``strip`` says and counts an animation's
    frames from their headers: past the budget, ``ImageTooLarge`` before anything decodes.
    Pure Python over user bytes, so it runs here, in the engine, never on the server's event
    loop."""
    if info.format is ImageFormat.JPEG:
        scans = count_jpeg_scans(data, max_scans)
        if scans.progressive != jpeg_progressive(data[:HEAD_BYTES]):
            raise InvalidImage("The JPEG's frame headers disagree on whether it is progressive")
    if not strip and frames is None:
        return None
    scanner = MetadataScanner(info.format, frames)
    scanner.feed(data)
    edits = scanner.finish()
    return edits if strip else None


def upload_image(
    source: JobInput,
    info: ImageInfo,
    *,
    max_pixels: int,
    max_scans: int,
    strip: bool,
    placeholders: bool = False,
    thumbnail: ThumbnailParams | None = None,
    thumbnail_within: float = 0.0,
    frames: FrameBudget | None = None,
) -> UploadWork:
    """:func:`scan_structure` (the metadata edits, when ``strip``), :func:`verify_image`, then
    in the same job (one round trip and one copy of the bytes per upload) the placeholders when
    asked, then the thumbnail with ``thumbnail``'s params
    (:func:`~chitram_core.images.thumbnails.render_thumbnail`, as the thumbnail job renders it).
    A JPEG with a thumbnail to make is decoded once instead (:func:`_upload_jpeg`).

    Only a verification error is raised. A placeholders or thumbnail error gives None for that
    part. The thumbnail is skipped when verification and placeholders have already taken
    ``thumbnail_within`` seconds: its decode costs about what verification's did, and a job
    past the decode timeout is killed, which would fail the upload for its thumbnail. The
    decodes run one after the other, so the job needs the largest of their costs, not their
    sum.
    """
    data = load(source)
    edits = scan_structure(data, info, strip=strip, max_scans=max_scans, frames=frames)
    structure_checked = strip or frames is not None
    if thumbnail is not None and info.format is ImageFormat.JPEG:
        made = _upload_jpeg(
            data,
            info,
            max_pixels=max_pixels,
            max_scans=max_scans,
            structure_checked=structure_checked,
            placeholders=placeholders,
            params=thumbnail,
            within=thumbnail_within,
        )
        return attrs.evolve(made, edits=edits)
    started = time.perf_counter()
    shared: list[Placeholders | None] = []

    def from_verification(img: Image.Image) -> None:
        # A large JPEG's verification decodes the very draft the placeholders start from.
        try:
            shared.append(placeholders_of(img))
        except Exception:  # the placeholders' own failure is not the upload's
            shared.append(None)

    share = (
        placeholders
        and info.format is ImageFormat.JPEG
        and shares_verify_draft(info.width, info.height)
    )
    verify_image(
        data,
        info,
        max_pixels=max_pixels,
        max_scans=max_scans,
        structure_checked=structure_checked,
        decoded=from_verification if share else None,
    )
    found: Placeholders | None = None
    if shared:
        found = shared[0]
    elif placeholders:
        try:
            found = compute_placeholders(data, max_pixels=max_pixels)
        except ChitramError:
            found = None
    rendered: RenderedThumbnail | None = None
    if thumbnail is not None and time.perf_counter() - started < thumbnail_within:
        try:
            rendered = render_thumbnail(data, thumbnail, max_pixels=max_pixels)
        except (ChitramError, MemoryError):  # the thumbnail job tries again and says why
            rendered = None
    return UploadWork(placeholders=found, thumbnail=rendered, edits=edits)


def _upload_jpeg(
    data: bytes,
    info: ImageInfo,
    *,
    max_pixels: int,
    max_scans: int,
    structure_checked: bool,
    placeholders: bool,
    params: ThumbnailParams,
    within: float,
) -> UploadWork:
    """A JPEG upload's job with one decode: verification decodes at the thumbnail's scale
    instead of 1/8 (libjpeg entropy-decodes every block at any scale, so it proves as much),
    then the thumbnail is finished from those pixels and the placeholders are taken from the
    thumbnail. Only a verification error is raised, as in :func:`upload_image`. A decode that
    took ``within`` seconds or more leaves the thumbnail to its job, as there (the job must end
    well inside the decode timeout); the placeholders then come from the decoded pixels.
    """
    started = time.perf_counter()
    made: list[UploadWork] = []

    def from_pixels(img: Image.Image) -> None:
        rendered: RenderedThumbnail | None = None
        found: Placeholders | None = None
        # A thumbnail or placeholder failure is not the upload's: that part is None.
        if time.perf_counter() - started >= within:
            with contextlib.suppress(Exception):
                found = placeholders_of(img) if placeholders else None
            made.append(UploadWork(placeholders=found))
            return
        try:
            out = finish(img, params, img.getexif().get(0x0112, 1))
        except Exception:
            made.append(UploadWork())
            return
        if placeholders:
            with contextlib.suppress(Exception):
                found = placeholders_of_pixels(out)
        with contextlib.suppress(Exception):
            rendered = encode(out, params, img.info.get("icc_profile"))
        made.append(UploadWork(placeholders=found, thumbnail=rendered))

    verify_image(
        data,
        info,
        max_pixels=max_pixels,
        max_scans=max_scans,
        structure_checked=structure_checked,
        decoded=from_pixels,
        shrink=lambda img: shrink_on_load(img, params),
    )
    return made[0] if made else UploadWork()


def model_input_image(data: JobInput, *, max_pixels: int) -> bytes:
    """The JPEG a tagging model sees (:func:`~chitram_core.images.model_input.model_jpeg`)."""
    return model_jpeg(load(data), max_pixels=max_pixels)


def moderation_image(data: JobInput, *, max_pixels: int, max_side: int) -> bytes:
    """The preview a moderator sees: a metadata-free JPEG of at most ``max_side`` a side."""
    return model_jpeg(load(data), max_pixels=max_pixels, max_side=max_side)
