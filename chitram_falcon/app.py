"""``create_app``: the Chitram v1 HTTP API as a Falcon ASGI app over one Chitram instance."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import falcon
import falcon.asgi

from chitram_core import Chitram, Settings
from chitram_falcon import errors, observed, redaction
from chitram_falcon.context import ChitramHandle
from chitram_falcon.fastread import FastReads
from chitram_falcon.openapi import OpenAPIResource
from chitram_falcon.resources.auth import (
    LoginResource,
    LogoutResource,
    MeResource,
    PasswordResetResource,
    RefreshResource,
    RegisterResource,
    TokenResource,
)
from chitram_falcon.resources.health import HealthResource, LiveResource, ReadyResource
from chitram_falcon.resources.images import (
    ImageFileResource,
    ImageListResource,
    ImageResource,
    ThumbnailResource,
    UploadResource,
    VariantResource,
)
from chitram_falcon.resources.oauth import OAuthStartResource, OAuthTokenResource
from chitram_falcon.resources.tags import (
    AutoTagResource,
    ImageTagResource,
    ImageTagsResource,
    PopularTagsResource,
    TagSearchResource,
    TagsResource,
)
from chitram_falcon.security import SecurityHeaders

log = logging.getLogger("chitram_falcon")

API = "/api/v1"

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Extension = Callable[["ChitramApp"], None]
"""Mounts extra routes (a web UI, host endpoints) on the app; reads ``app.handle.chitram``."""

_DEFERRED_FIRST_EVENT: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": True}
_BODYLESS = frozenset({"GET", "HEAD"})
_OWN_MIDDLEWARE = (ChitramHandle, SecurityHeaders)


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
        super().__init__(**options)

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
                await observed.serve(super().__call__, scope, receive, send, fast)
            else:
                await observed.serve(super().__call__, scope, _defer_first_event(receive), send)
            return
        await super().__call__(scope, receive, send)

    def add_middleware(self, middleware: Any) -> None:
        """Falcon's, and a middleware other than ours turns the prepared reads off: it then sees
        every request, as Falcon promises."""
        super().add_middleware(middleware)
        if any(not isinstance(m, _OWN_MIDDLEWARE) for m in self._unprepared_middleware):
            self.fast_reads.enabled = False

    def add_route(self, uri_template: str, resource: object, **kwargs: Any) -> None:
        """Falcon's; a route with options, or another resource on a prepared-read template,
        replaces that prepared read too."""
        super().add_route(uri_template, resource, **kwargs)
        self.fast_reads.route(uri_template, None if kwargs else resource)

    def _get_responder(self, req: Any) -> Any:
        """Falcon's routing, leaving the matched route template where the access log finds it."""
        found = super()._get_responder(req)
        req.scope[observed.ROUTE_KEY] = found[3]
        return found

    @property
    def chitram(self) -> Chitram:
        """The open instance (503 SERVICE_UNAVAILABLE before the lifespan has opened it)."""
        return self.handle.chitram


def _defer_first_event(receive: Receive) -> Receive:
    first = True

    async def deferred() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return dict(_DEFERRED_FIRST_EVENT)
        return await receive()

    return deferred


def create_app(
    chitram: Chitram | None = None,
    settings: Settings | None = None,
    *,
    extensions: Iterable[Extension] = (),
    web_ui: bool | None = None,
) -> ChitramApp:
    """The reference ASGI app.

    With ``chitram`` the host owns its lifecycle (open it before serving, close it after);
    without, the app opens one from ``settings`` (default: ``Settings.from_env()``) in the ASGI
    lifespan and closes it at shutdown. Settings are read and checked here, so a bad
    configuration fails before the server binds. ``extensions`` mount extra routes; the web UI
    (``chitram_falcon.web``, when installed and ``settings.web_ui``) is mounted the same way.
    """
    if chitram is not None:
        settings = chitram.settings
    elif settings is None:
        settings = Settings.from_env()
    settings.check_production()
    if chitram is None:
        settings = settings.with_jwt_secret()
    handle = ChitramHandle(chitram, settings)
    redaction.install()

    app = ChitramApp(handle, middleware=[handle, SecurityHeaders(settings)])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.keep_blank_qs_values = False
    errors.install(app)

    app.add_route("/health", HealthResource(handle))
    app.add_route("/health/live", LiveResource())
    app.add_route("/health/ready", ReadyResource(handle))
    app.add_route(f"{API}/auth/register", RegisterResource(handle))
    app.add_route(f"{API}/auth/login", LoginResource(handle))
    app.add_route(f"{API}/auth/token", TokenResource(handle))
    app.add_route(f"{API}/auth/refresh", RefreshResource(handle))
    app.add_route(f"{API}/auth/logout", LogoutResource(handle))
    app.add_route(f"{API}/auth/me", MeResource(handle))
    app.add_route(f"{API}/auth/password-reset", PasswordResetResource(handle))
    app.add_route(f"{API}/images/upload", UploadResource(handle))
    app.add_route(f"{API}/images", ImageListResource(handle))
    app.add_route(f"{API}/images/{{image_id}}", ImageResource(handle))
    app.add_route(f"{API}/images/{{image_id}}/file", ImageFileResource(handle))
    app.add_route(f"{API}/images/{{image_id}}/thumbnail", ThumbnailResource(handle))
    app.add_route(f"{API}/images/{{image_id}}/variants/{{spec}}", VariantResource(handle))
    app.add_route("/openapi.json", OpenAPIResource())
    # social sign-in (OAuth through Supabase, PKCE)
    app.add_route(f"{API}/auth/oauth/token", OAuthTokenResource(handle))
    app.add_route(f"{API}/auth/oauth/{{provider}}", OAuthStartResource(handle))
    # tags
    app.add_route(f"{API}/images/{{image_id}}/tags", ImageTagsResource(handle))
    app.add_route(f"{API}/images/{{image_id}}/tags/{{name}}", ImageTagResource(handle))
    app.add_route(f"{API}/images/{{image_id}}/ai-tag", AutoTagResource(handle))
    app.add_route(f"{API}/tags", TagsResource(handle))
    app.add_route(f"{API}/tags/popular", PopularTagsResource(handle))
    app.add_route(f"{API}/tags/search", TagSearchResource(handle))

    if web_ui if web_ui is not None else settings.web_ui:
        _mount_web_ui(app)
    for extension in extensions:
        extension(app)
    return app


def _mount_web_ui(app: ChitramApp) -> None:
    """``chitram_falcon.web.mount(app)`` when that package exists; silently absent otherwise."""
    try:
        web = importlib.import_module("chitram_falcon.web")
    except ModuleNotFoundError as exc:
        if exc.name == "chitram_falcon.web":
            return
        raise
    mount = getattr(web, "mount", None)
    if mount is None:
        log.warning("chitram_falcon.web has no mount(app) function; the web UI is not served")
        return
    mount(app)
