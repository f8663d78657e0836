"""Sources: where an upload's bytes come from, and what is known of them before they flow.

A :class:`Source` is anything with a byte stream and the facts known up front (file name,
declared length, owner). :class:`BodySource` covers what the SDK accepts today (bytes, a
binary file, an async iterable such as a multipart part); a resumable upload or a fetch by URL
would be another ``Source`` given to the same pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import attrs

from chitram_core.intake import UploadSource, chunks
from chitram_core.models import Principal


class Source(Protocol):
    @property
    def filename(self) -> str | None: ...

    @property
    def owner(self) -> Principal | None: ...

    @property
    def declared_length(self) -> int | None:
        """The length the source announced (None: unknown until the stream ends)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes, in chunks; called once."""
        ...


@attrs.frozen
class BodySource:
    """An upload body given to the SDK: bytes, a binary file or an async iterable."""

    body: UploadSource
    filename: str | None = None
    owner: Principal | None = None

    @property
    def declared_length(self) -> int | None:
        if isinstance(self.body, bytes | bytearray | memoryview):
            return len(self.body)
        return None

    def chunks(self) -> AsyncIterator[bytes]:
        return chunks(self.body)
