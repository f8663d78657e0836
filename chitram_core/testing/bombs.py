"""Small files that are expensive to decode: for tests of the image-work limits.

Each is a few kilobytes at most and made in milliseconds, so a test suite can send them freely.

- :func:`progressive_jpeg` is an honest progressive JPEG (Pillow writes about ten scans).
- :func:`jpeg_scan_bomb` repeats its last scan until the file has ``scans`` scans: a decoder
  makes one pass over the whole image per scan (the Cure53 "scan bomb").
- :func:`webp_canvas_bomb` is a 40-byte lossless WebP whose header claims a big canvas:
  Pillow's WebP plugin allocates canvas-sized buffers in ``Image.open``, before any check.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

__all__ = ["jpeg_scan_bomb", "jpeg_scans", "progressive_jpeg", "webp_canvas_bomb"]


def progressive_jpeg(width: int = 32, height: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 60)).save(
        buffer, "JPEG", progressive=True, quality=80
    )
    return buffer.getvalue()


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """``(marker, start, end)`` of each segment; a scan's range includes its entropy data."""
    out: list[tuple[int, int, int]] = []
    i = 2
    while i < len(data):
        marker = data[i + 1]
        if marker == 0xD9:
            out.append((marker, i, i + 2))
            break
        (length,) = struct.unpack_from(">H", data, i + 2)
        end = i + 2 + length
        if marker == 0xDA:
            while True:
                end = data.index(b"\xff", end)
                if data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                    end += 2
                    continue
                break
        out.append((marker, i, end))
        i = end
    return out


def jpeg_scans(data: bytes) -> int:
    """How many scans (SOS segments) a well-formed JPEG has, by an independent walk."""
    return sum(1 for marker, _, _ in _segments(data) if marker == 0xDA)


def jpeg_scan_bomb(scans: int = 150) -> bytes:
    """A progressive JPEG with exactly ``scans`` scans (its last scan repeated)."""
    data = progressive_jpeg()
    segments = _segments(data)
    existing = [seg for seg in segments if seg[0] == 0xDA]
    if scans < len(existing):
        raise ValueError(f"a progressive JPEG from Pillow already has {len(existing)} scans")
    _, start, end = existing[-1]
    eoi = segments[-1][1]
    return data[:eoi] + data[start:end] * (scans - len(existing)) + data[eoi:]


def webp_canvas_bomb(width: int = 6300, height: int = 6300) -> bytes:
    """A lossless WebP of 40 bytes whose header says ``width`` x ``height`` (up to 16384)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 0, 0)).save(buffer, "WEBP", lossless=True)
    data = bytearray(buffer.getvalue())
    if data[12:16] != b"VP8L":
        raise RuntimeError("this libwebp did not write a VP8L chunk")
    (bits,) = struct.unpack_from("<I", data, 21)
    bits = (width - 1) | ((height - 1) << 14) | (bits & ~((1 << 28) - 1))
    struct.pack_into("<I", data, 21, bits)
    return bytes(data)
