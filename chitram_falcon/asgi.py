"""``ChitramApp``: the Falcon ASGI app class that :func:`chitram_falcon.app.create_app` builds.

Its own module, apart from the routes ``create_app`` adds, so that what mounts on an app (the
web UI, a host's extensions) can name its type without importing the module that mounts it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import falcon.asgi

from chitram_core import Chitram
from chitram_core.errors import RequestTimeout
from chitram_falcon import access, observed
from chitram_falcon.context import ChitramHandle
from chitram_falcon.fastread import FastReads
from chitram_falcon.security import SecurityHeaders

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_DEFERRED_FIRST_EVENT: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": True}
_BODYLESS = frozenset({"GET", "HEAD"})
_OWN_MIDDLEWARE = (ChitramHandle, SecurityHeaders, observed.RouteTemplate)


class ChitramApp(falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]):
    """A Falcon ASGI app that does not pull any of the request body until a resource reads it.

    Falcon awaits the first ``http.request`` event before routing, which makes the server
    read (and, for ``Expect: 100-continue``, invite) the first body chunk of every request.
    Handing Falcon an empty first event instead means an upload refused from its headers
    (401, 413, 429) costs no body bytes at all. GET and HEAD carry no body we read, so the
    read path skips the wrapper.
    """

    def __init__(self, handle: ChitramHandle, **options: Any) -> None:
        self.handle = handle
        self.fast_reads = FastReads(handle.settings)  # before Falcon's __init__ adds middleware
        self._proxies = handle.settings.trusted_proxies
        self._body_idle = handle.settings.body_idle_timeout
        access.WRITER.start()  # the access lines' flushing thread, once per process
        # The matched route template for the access log, metrics and span, from public API.
        middleware = [*_components(options.pop("middleware", None)), observed.RouteTemplate()]
        super().__init__(middleware=middleware, **options)

    # falcon.asgi.App.__call__ is itself an [override] of the WSGI App.__call__ (falcon ignores it
    # the same way), and our receive yields dict events, as ASGI servers send, not Mappings.
    async def __call__(  # type: ignore[override]
        self, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        if scope["type"] == "http":
            # Request id, access line, metrics and span: see chitram_falcon/observed.py.
            if scope["method"] in _BODYLESS:
                # A warm public read is answered from what is prepared (fastread), else Falcon.
                fast = self.fast_reads.answer
                await observed.serve(
                    super().__call__,
                    scope,
                    receive,
                    send,
                    fast,
                    self.handle.observer,
                    self._proxies,
                )
            else:
                await observed.serve(
                    super().__call__,
                    scope,
                    _defer_first_event(_bounded(receive, self._body_idle)),
                    send,
                    observer=self.handle.observer,
                    proxies=self._proxies,
                )
            return
        await super().__call__(scope, receive, send)

    def answer_now(self, scope: dict[str, Any]) -> tuple[bytes, bytes, bytes, observed.Done] | None:
        """For a server that writes answers itself (``chitram serve``'s protocol): a warm
        public read it may answer without calling the app, as :meth:`__call__` would answer it
        (see :func:`chitram_falcon.observed.answer_now`), else None and it calls the app."""
        return observed.answer_now(
            self.fast_reads.answer_now, scope, self.handle.observer, self._proxies
        )

    def add_middleware(self, middleware: Any) -> None:
        """Falcon's (one middleware object or several), and a middleware other than ours turns
        the prepared reads off: it then sees every request, as Falcon promises. Falcon's
        ``__init__`` adds its ``middleware`` option (and CORS) through here too."""
        added = _components(middleware)
        super().add_middleware(added)
        if any(not isinstance(m, _OWN_MIDDLEWARE) for m in added):
            self.fast_reads.enabled = False

    def add_route(self, uri_template: str, resource: object, **kwargs: Any) -> None:
        """Falcon's; a route with options, or another resource on a prepared-read template,
        replaces that prepared read too."""
        super().add_route(uri_template, resource, **kwargs)
        self.fast_reads.route(uri_template, None if kwargs else resource)

    @property
    def chitram(self) -> Chitram:
        """The open instance (503 SERVICE_UNAVAILABLE before the lifespan has opened it)."""
        return self.handle.chitram


def _components(middleware: Any) -> list[Any]:
    """Falcon's reading of a ``middleware`` argument: nothing, one component, or an iterable of
    them (read once, here, so we see the same list Falcon gets)."""
    if not middleware:
        return []
    try:
        return list(middleware)
    except TypeError:
        return [middleware]


class _BodyTimeout(RequestTimeout):
    """408, and the connection closes: the rest of the body is never read."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message, **details)
        self.http_headers = {"Connection": "close"}


def _bounded(receive: Receive, idle: float) -> Receive:
    """``receive`` that waits at most ``idle`` seconds for each body chunk, then raises
    ``RequestTimeout`` (408, and the connection is closed); once the body is whole (or the
    client gone), waiting is unbounded again (a disconnect may come at any time)."""
    whole = False

    async def bounded() -> dict[str, Any]:
        nonlocal whole
        if whole:
            return await receive()
        try:
            with anyio.fail_after(idle):
                event = await receive()
        except TimeoutError:
            whole = True
            raise _BodyTimeout(
                f"No byte of the request body arrived for {idle:g} seconds", timeout=idle
            ) from None
        if event["type"] != "http.request" or not event.get("more_body", False):
            whole = True
        return event

    return bounded


def _defer_first_event(receive: Receive) -> Receive:
    first = True

    async def deferred() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return dict(_DEFERRED_FIRST_EVENT)
        return await receive()

    return deferred
