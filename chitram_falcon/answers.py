"""A prepared answer: the headers of a 200 that depend only on what is served, computed once.

Both ways an answer leaves the app take their headers from one :class:`Prepared`:

- through Falcon, a resource calls :meth:`Prepared.apply` (its fields, and the policy the
  :class:`~chitram_falcon.security.SecurityHeaders` middleware turns into the security
  headers), then sets ``content_type`` and the Content-Length of what it sends (all of it, a
  range, nothing for a 304);
- before Falcon (``chitram_falcon.fastread``), :meth:`Prepared.raw_headers` gives the whole
  header list as the ASGI server takes it: the same fields, Content-Type, Content-Length and
  :func:`~chitram_falcon.security.raw_security_headers` for the same policy and https decision.

So the fast answer cannot carry a header the Falcon one does not (a test compares them byte for
byte, and another that every kind of answer carries the security headers).
"""

from __future__ import annotations

import attrs
import falcon.asgi

from chitram_falcon.security import (
    Headers,
    Policy,
    RawHeaders,
    header_lines,
    raw,
    raw_security_headers,
    use_policy,
)


@attrs.frozen
class Prepared:
    """What a 200 answer of ``length`` body bytes carries besides what varies per request."""

    fields: Headers
    """The answer's own headers (ETag, Cache-Control, Content-Disposition...), as written."""
    content_type: str
    length: int
    policy: Policy = Policy.API
    _raw: tuple[RawHeaders, RawHeaders] = attrs.field(init=False, repr=False, eq=False)
    _lines: tuple[bytes | None, bytes | None] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        own = (
            *raw(self.fields),
            (b"content-type", self.content_type.encode("latin-1")),
            (b"content-length", b"%d" % self.length),
        )
        plain = own + raw_security_headers(self.policy, False)
        secure = own + raw_security_headers(self.policy, True)
        object.__setattr__(self, "_raw", (plain, secure))
        object.__setattr__(self, "_lines", (header_lines(plain), header_lines(secure)))

    def apply(self, resp: falcon.asgi.Response) -> None:
        """Put the fields and the security policy on a Falcon answer (the resource sets
        ``content_type`` and Content-Length, which a 304, a range or a HEAD change)."""
        if self.fields:
            resp.set_headers(self.fields)
        use_policy(resp, self.policy)

    def raw_headers(self, https: bool) -> RawHeaders:
        """The whole header list of the 200 for the full body, security headers included."""
        return self._raw[https]

    def header_lines(self, https: bool) -> bytes | None:
        """:meth:`raw_headers` as HTTP/1.1 header lines (``name: value\r\n`` each), for a
        server that writes the answer itself (``chitram_falcon.serving``); None if a value
        could not be written as is."""
        return self._lines[https]
