"""One chunk of a resumable upload as it arrives: counted against the declared length, checked
against its checksum, and (for the first chunk) sniffed for a known image format.

The checks run inside the stream that storage writes, so a refusal (a checksum that does not
match, bytes past the declared length, a file that is no image) stops the write before the
object is published: a refused chunk leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import attrs

from chitram_core.errors import ChecksumMismatch, FileTooLarge, InvalidRequest
from chitram_core.images.formats import sniff
from chitram_core.images.kinds import EARLY_SNIFF_BYTES as SNIFF_BYTES

CHECKSUM_ALGORITHMS = ("sha1", "sha256")
"""What ``Upload-Checksum`` may name (the tus checksum extension)."""


@attrs.frozen
class Checksum:
    """The digest a client sent with a chunk."""

    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, header: str) -> Checksum:
        """``"<algorithm> <base64 digest>"``, as in ``Upload-Checksum``."""
        algorithm, _, encoded = header.strip().partition(" ")
        algorithm = algorithm.lower()
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise InvalidRequest(
                f"Unsupported checksum algorithm {algorithm!r}; use one of "
                + ", ".join(CHECKSUM_ALGORITHMS),
                field="Upload-Checksum",
            )
        try:
            digest = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(
                "Upload-Checksum must be '<algorithm> <base64 digest>'", field="Upload-Checksum"
            ) from exc
        if len(digest) != hashlib.new(algorithm).digest_size:
            raise InvalidRequest(
                f"A {algorithm} digest is {hashlib.new(algorithm).digest_size} bytes",
                field="Upload-Checksum",
            )
        return cls(algorithm, digest)


class CheckedChunk:
    """``stream`` as it flows to storage, checked; ``size`` is what has passed so far.

    A class rather than an async generator so that a stream storage stops reading leaves no
    suspended generator behind (see ``chitram_core.ingest.upload.Tapped``).
    """

    def __init__(
        self,
        stream: AsyncIterator[bytes],
        *,
        start: int,
        length: int,
        checksum: Checksum | None,
    ) -> None:
        self._stream = stream
        self.start = start
        self.length = length
        self.checksum = checksum
        self._hasher: Any = hashlib.new(checksum.algorithm) if checksum else None
        self._head = bytearray() if start == 0 else None
        self.size = 0

    def __aiter__(self) -> CheckedChunk:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = bytes(await self._stream.__anext__())
        except StopAsyncIteration:
            self._at_end()
            raise
        self.size += len(chunk)
        if self.start + self.size > self.length:
            raise FileTooLarge(
                f"The chunk runs past the upload's declared length of {self.length} bytes",
                max_bytes=self.length,
            )
        if self._hasher is not None:
            self._hasher.update(chunk)
        if self._head is not None:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]
            if len(self._head) >= SNIFF_BYTES:
                sniff(bytes(self._head))  # INVALID_FILE_FORMAT: refused from the first chunk
                self._head = None
        return chunk

    def _at_end(self) -> None:
        if self.checksum is not None and self._hasher.digest() != self.checksum.digest:
            raise ChecksumMismatch(
                f"The chunk does not match its {self.checksum.algorithm} checksum; "
                "it was discarded",
                algorithm=self.checksum.algorithm,
            )
        if self._head is not None and self.start + self.size == self.length and self._head:
            sniff(bytes(self._head))  # a whole file shorter than the sniffed prefix
