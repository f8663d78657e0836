"""The engine jobs a flow asks for by what it wants: a thumbnail, placeholders.

Each call reads the header first (the reservation is decided before any decode), then runs the
job through the one :class:`~chitram_core.engine.base.Engine` it is given. The image is bytes or,
for a large one, a :class:`~chitram_core.engine.work.LocalFile` the job reads itself (see
:mod:`chitram_core.engine.local`).
"""

from __future__ import annotations

import logging
import os

import anyio.to_thread

from chitram_core.engine.base import Engine
from chitram_core.engine.work import (
    JobInput,
    LocalFile,
    decode_cost,
    model_input_image,
    placeholders_image,
    thumbnail_image,
    variant_cost,
)
from chitram_core.errors import ChitramError
from chitram_core.images.formats import HEAD_BYTES, ImageFormat, jpeg_progressive, probe
from chitram_core.images.model_input import MODEL_MAX_SIDE
from chitram_core.images.placeholders import PLACEHOLDER_SIDE
from chitram_core.images.thumbnails import RenderedThumbnail, ThumbnailParams

log = logging.getLogger(__name__)


def _progressive(head: bytes) -> bool:
    """Whether a JPEG is progressive (its cost is higher); False for other formats. From the
    frame header alone (a bounded walk): the upload's job proved the rest of the file agrees."""
    return probe(head).format is ImageFormat.JPEG and jpeg_progressive(head)


async def head_and_size(data: JobInput) -> tuple[bytes, int]:
    """The first :data:`~chitram_core.images.formats.HEAD_BYTES` of the image and its size
    (a bounded read, in a thread, for a file)."""
    if not isinstance(data, LocalFile):
        return bytes(data[:HEAD_BYTES]), len(data)
    return await anyio.to_thread.run_sync(_file_head, data.path)


def _file_head(path: str) -> tuple[bytes, int]:
    with open(path, "rb") as fh:
        return fh.read(HEAD_BYTES), os.fstat(fh.fileno()).st_size


async def render_thumbnail_async(
    data: JobInput,
    params: ThumbnailParams,
    *,
    engine: Engine,
    max_pixels: int,
    timeout: float | None = None,  # noqa: ASYNC109 - the engine enforces it
    max_scans: int = 100,
    background: bool = False,
) -> RenderedThumbnail:
    """:func:`~chitram_core.images.thumbnails.render_thumbnail` in ``engine``."""
    if not isinstance(data, LocalFile):
        data = bytes(data)
    head, size = await head_and_size(data)
    info = probe(head)  # the header decides the reservation, before any decode
    cost = decode_cost(
        info, file_size=size, progressive=_progressive(head), thumbnail_size=params.size
    )
    return await engine.run(
        thumbnail_image,
        data,
        params,
        max_pixels=max_pixels,
        memory=cost,
        timeout=timeout,
        op="thumbnail",
        background=background,
    )


async def placeholders_async(
    data: JobInput,
    size: int,
    *,
    engine: Engine,
    max_pixels: int,
    max_scans: int,
    owner: str | None = None,
) -> tuple[str | None, str | None]:
    """(BlurHash, dominant colour) of verified image bytes, in ``engine`` (as ``owner``'s
    work); (None, None) when the engine could not make them now (the sweep fills them in
    later)."""
    try:
        head, _ = await head_and_size(data)
        info = probe(head)
        memory = variant_cost(
            info, file_size=size, progressive=_progressive(head), side=PLACEHOLDER_SIDE * 2
        )
        found = await engine.run(
            placeholders_image,
            data,
            max_pixels=max_pixels,
            memory=memory,
            op="placeholders",
            owner=owner,
        )
    except ChitramError as exc:
        log.info("placeholders not computed now (%s); the sweep will", exc.message)
        return None, None
    return found.blurhash, found.dominant_color


async def model_input_async(
    data: JobInput,
    *,
    engine: Engine,
    max_pixels: int,
    owner: str | None = None,
    background: bool = False,
) -> bytes:
    """:func:`~chitram_core.images.model_input.model_jpeg` (the JPEG a tagging model sees) in
    ``engine``, reserving what a thumbnail of the model's size costs: the decode is of user
    bytes, so it is killable and within the memory budget like every other."""
    head, size = await head_and_size(data)
    info = probe(head)
    cost = decode_cost(
        info,
        file_size=size,
        progressive=info.format is ImageFormat.JPEG and jpeg_progressive(head),
        thumbnail_size=MODEL_MAX_SIDE,
    )
    return await engine.run(
        model_input_image,
        data,
        max_pixels=max_pixels,
        memory=cost,
        op="tag_input",
        owner=owner,
        background=background,
    )
