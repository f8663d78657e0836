"""Warm public reads answered before Falcon builds a request.

A public ``GET`` (or ``HEAD``) of ``/file``, ``/thumbnail`` or an image's metadata, for an image
whose answer the resource has prepared (a :class:`chitram_falcon.answers.Prepared`, the object
the resource's Falcon answer takes its headers from too) and whose bytes are in memory, is
answered here from that answer's header list: the same lookup as every request (what refuses a
deleted image), then two ``send`` calls. The security headers and the https decision are
``chitram_falcon.security``'s, as for every answer. It runs inside the observation
wrapper (``observed.serve``), so the request id, access line, metrics and span are as for any
request, and the answer is byte for byte the one Falcon gives (a test compares them).

Anything else goes to Falcon unchanged: an ``Authorization`` header (a bad token must be a 401),
``Range``, ``If-Range`` and ``If-None-Match`` (206/416/304), an image not prepared yet, a lookup
that fails (Falcon looks again and answers the error), a path Falcon would normalise, an app
mounted under a ``root_path``. A host that adds a Falcon middleware turns this off, so its
middleware sees every request (``ChitramApp.add_middleware``); a host that replaces one of these
routes turns it off for that route (``ChitramApp.add_route``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from chitram_core import Settings
from chitram_falcon.observed import ROUTE_KEY
from chitram_falcon.security import RawHeaders, is_https

Answer = tuple[RawHeaders, bytes]
"""The header list of a 200 (Content-Length included) and the whole body."""

Lines = tuple[bytes, bytes]
"""The same as HTTP/1.1 header lines (``name: value\r\n`` each) and the whole body."""

Send = Callable[[dict[str, Any]], Awaitable[None]]

PREFIX = "/api/v1/images/"
_ID_LENGTH = 36  # a canonical UUID; anything else is Falcon's (404 or another route)
_DECLINED = frozenset({b"authorization", b"range", b"if-range", b"if-none-match"})
_FORWARDED_PROTO = b"x-forwarded-proto"
_READS = frozenset({"GET", "HEAD"})


class PreparedRead(Protocol):
    """A resource that can answer a warm anonymous GET from what it prepared."""

    async def prepared(self, image_id: str, https: bool) -> Answer | None:
        """The whole header list (security headers included, HSTS when ``https``) and body of
        the 200, or None to let Falcon answer."""

    def prepared_now(self, image_id: str, https: bool) -> Lines | None:
        """The same answer as header lines, when it needs no I/O at all (the lookup answered
        in this process); None otherwise."""


_Route = tuple[str, PreparedRead, frozenset[str], Callable[[str, bool], Lines | None] | None]
"""(template, resource, its read methods, its ``prepared_now`` if it has one)."""

_PREFIX_LENGTH = len(PREFIX)


class FastReads:
    """The routes under ``/api/v1/images/{image_id}`` that answer warm reads before Falcon."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = True
        self._routes: dict[str, _Route] = {}

    def route(self, template: str, resource: object) -> None:
        """Note a route Falcon now serves: ours when it is ``{PREFIX}{image_id}<tail>`` and the
        resource can answer prepared reads; any other resource on such a template replaces it."""
        if not template.startswith(PREFIX + "{image_id}"):
            return
        tail = template[len(PREFIX + "{image_id}") :]
        if callable(getattr(resource, "prepared", None)):
            methods = frozenset(m for m in _READS if hasattr(resource, f"on_{m.lower()}"))
            now = getattr(resource, "prepared_now", None)
            self._routes[tail] = (template, resource, methods, now)  # type: ignore[assignment]
        else:
            self._routes.pop(tail, None)

    def _match(self, scope: dict[str, Any]) -> tuple[_Route, str, bool] | None:
        """(route, image id, https) when ``scope`` is a read this module may answer, else
        None."""
        method = scope["method"]
        if not self.enabled or method not in _READS or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if not path.startswith(PREFIX):
            return None
        rest = path[_PREFIX_LENGTH:]
        image_id = rest[:_ID_LENGTH]
        found = self._routes.get(rest[_ID_LENGTH:])
        if found is None or len(image_id) != _ID_LENGTH or "/" in image_id:
            return None
        forwarded: bytes | None = None
        for name, value in scope["headers"]:
            if name in _DECLINED:
                return None
            if name == _FORWARDED_PROTO:
                forwarded = value
        if method not in found[2]:  # HEAD on metadata is Falcon's 405
            return None
        scheme = scope.get("scheme", "http")
        if forwarded is None:  # nothing a proxy could vouch for: is_https's first answer
            return found, image_id, scheme == "https"
        client = scope.get("client")
        https = is_https(
            scheme,
            forwarded.decode("latin-1"),
            client[0] if client else "127.0.0.1",  # Falcon's remote_addr default
            self.settings,
        )
        return found, image_id, https

    async def answer(
        self, scope: dict[str, Any], send: Send, extra: tuple[bytes, bytes]
    ) -> int | None:
        """Answer ``scope`` with the ``extra`` header (the request id) when it is a warm public
        read, and say how many body bytes went out; None (nothing sent) otherwise."""
        matched = self._match(scope)
        if matched is None:
            return None
        (template, resource, _, _), image_id, https = matched
        answer = await resource.prepared(image_id, https)
        if answer is None:
            return None
        headers, body = answer
        scope[ROUTE_KEY] = template
        await send({"type": "http.response.start", "status": 200, "headers": (*headers, extra)})
        if scope["method"] == "GET":
            await send({"type": "http.response.body", "body": body})
            return len(body)
        await send({"type": "http.response.body", "body": b""})
        return 0

    def answer_now(self, scope: dict[str, Any]) -> Lines | None:
        """The header lines and body of the 200 to ``scope`` when it is a warm public read that
        needs no I/O at all (the same answer as :meth:`answer`, without the request id), else
        None; the route template is left in the scope as :meth:`answer` leaves it."""
        matched = self._match(scope)
        if matched is None:
            return None
        (template, _, _, now), image_id, https = matched
        lines = None if now is None else now(image_id, https)
        if lines is not None:
            scope[ROUTE_KEY] = template
        return lines
