"""``Upload``: what one upload has learnt so far, handed from stage to stage; ``Stage``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

import attrs

from chitram_core.images.formats import ImageInfo
from chitram_core.images.metadata import Edit
from chitram_core.images.thumbnails import RenderedThumbnail
from chitram_core.ingest.source import Source
from chitram_core.intake import Intake
from chitram_core.models import Image


class Stage(Protocol):
    """One step of the upload. It reads and fills in the :class:`Upload`; a refusal is a
    ``ChitramError``, after which the pipeline removes every temporary object of the upload
    and nothing is recorded."""

    async def run(self, upload: Upload) -> None: ...


@attrs.frozen
class Staged:
    """A thumbnail rendered with the upload, written to a temporary object."""

    key: str
    rendered: RenderedThumbnail


@attrs.define
class Upload:
    """Filled in by the stages, in order. Fields a stage has not reached yet are empty;
    :meth:`header` and :meth:`image` say so loudly rather than hand out a half-made value."""

    source: Source
    max_bytes: int | None
    """The caller's byte limit (None: ``CHITRAM_MAX_UPLOAD_BYTES``)."""
    stream: AsyncIterator[bytes]
    """The body as it flows: stream stages wrap it; nothing flows until it is spooled."""
    temporary: list[str] = attrs.field(factory=list)
    """Every temporary object written (removed at the end unless moved to a final key)."""
    moved: tuple[str, ...] = ()
    """Temporary objects now under their final key (nothing left to remove)."""
    intake: Intake | None = None
    info: ImageInfo | None = None
    stored_key: str = ""
    """The temporary object holding the bytes to keep (after any metadata rewrite)."""
    sha256: str = ""
    size: int = 0
    content: bytes | None = None
    """The stored bytes when they are already in memory (small files), else None."""
    progressive: bool = False
    edits: list[Edit] | None = None
    """The metadata edits the image job's structure scan planned (None: not stripped)."""
    placeholders: tuple[str | None, str | None] = (None, None)
    thumbnail: RenderedThumbnail | None = None
    """The thumbnail the image job rendered, if it did."""
    staged: Staged | None = None
    thumbnail_outcome: str | None = None
    """What the record made of the thumbnail (``Thumbnailer.record_rendered``'s outcomes, or
    ``"queued"``)."""
    new_blob: bool = False
    recorded: Image | None = None

    def header(self) -> ImageInfo:
        if self.info is None:
            raise RuntimeError("the header checks have not run")
        return self.info

    def streamed(self) -> Intake:
        if self.intake is None:
            raise RuntimeError("the stream checks have not run")
        return self.intake

    def image(self) -> Image:
        if self.recorded is None:
            raise RuntimeError("the upload was not recorded")
        return self.recorded


class Tapped:
    """``stream`` with ``tap`` called on each chunk before it is passed on (``tap`` may raise to
    refuse the upload there).

    A class rather than an async generator: a stream a later stage stops reading (a refused
    upload) leaves nothing to finalise, where a suspended generator is closed by the garbage
    collector, which trio reports as a warning.
    """

    def __init__(self, stream: AsyncIterator[bytes], tap: Callable[[bytes], object]) -> None:
        self._stream = stream
        self._tap = tap

    def __aiter__(self) -> Tapped:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._stream.__anext__()
        self._tap(chunk)
        return chunk
