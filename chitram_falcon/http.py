"""HTTP details that are pure functions: ranges, validators, Content-Disposition, bearer tokens.

Kept free of Falcon so they can be tested (and reused by another host) on their own.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

import attrs

from chitram_core.errors import InvalidToken

# RFC 5987 attr-char, minus nothing: what may stay unescaped in filename*.
_ATTR_CHARS = "!#$&+-.^_`|~"
_UNSAFE_ASCII = re.compile(r'[\x00-\x1f\x7f"\\;]')
_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")
_MAX_RANGE_DIGITS = 19


@attrs.frozen
class ByteRange:
    """A satisfiable single range: ``start`` inclusive, ``end`` exclusive."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


class RangeNotSatisfiable(Exception):
    """The Range header is well formed but no byte of it exists (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The byte range a ``Range`` header asks for, or None to send the whole representation.

    Following RFC 9110 §14: a header we do not understand (another unit, bad syntax) or
    several ranges are ignored (a server may always answer 200 with everything); a well-formed
    single range that starts past the end raises :class:`RangeNotSatisfiable`.
    """
    if not header:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE_SPEC.fullmatch(spec)
    if match is None:
        return None
    first, last = match.groups()
    if len(first) > _MAX_RANGE_DIGITS or len(last) > _MAX_RANGE_DIGITS:
        return None
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable()
        return ByteRange(max(0, size - suffix), size)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable()
    end = size if not last else min(int(last) + 1, size)
    return ByteRange(start, end)


def _etag_list(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith(("W/", "w/")) else tag


def none_match(if_none_match: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` names our ETag (weak comparison, as RFC 9110 §13.1.2 says)."""
    if not if_none_match:
        return False
    tags = _etag_list(if_none_match)
    return "*" in tags or any(_opaque(tag) == etag for tag in tags)


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """Whether a Range may be honoured under ``If-Range`` (strong comparison; dates never
    match, since we do not send Last-Modified)."""
    if if_range is None:
        return True
    return if_range.strip() == etag


def ascii_filename(filename: str, fallback: str) -> str:
    """A safe ASCII stand-in for ``filename`` in the quoted ``filename=`` parameter.

    Accents are dropped (``café`` → ``cafe``); a name with nothing ASCII left of its stem
    (``猫.png``) becomes ``fallback``.
    """
    decomposed = unicodedata.normalize("NFKD", filename)
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE_ASCII.sub("_", ascii_only).strip()
    stem, dot, _ext = cleaned.rpartition(".")
    if not (stem if dot else cleaned).strip(" ._-"):
        return fallback
    return cleaned.lstrip(". ")


def content_disposition(filename: str, fallback: str, disposition: str = "inline") -> str:
    """RFC 6266: an ASCII ``filename`` for old clients and the exact name in ``filename*``."""
    simple = ascii_filename(filename, fallback)
    encoded = quote(filename or fallback, safe=_ATTR_CHARS)
    return f"{disposition}; filename=\"{simple}\"; filename*=UTF-8''{encoded}"


def bearer_token(authorization: str | None) -> str | None:
    """The token in ``Authorization: Bearer <token>``; None when the header is absent.

    A header that is present but not a bearer token is an error, never anonymity: a client
    that sends credentials we cannot read must be told so.
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("The Authorization header must be 'Bearer <access token>'")
    return token
