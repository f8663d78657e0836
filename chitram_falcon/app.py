"""``create_app``: the Chitram v1 HTTP API as a Falcon ASGI app over one Chitram instance."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable

from chitram_core import Chitram, Settings
from chitram_core.observe import Observer
from chitram_falcon import errors, redaction
from chitram_falcon.asgi import ChitramApp as ChitramApp  # re-exported: its home before
from chitram_falcon.context import ChitramHandle
from chitram_falcon.docs import add_docs
from chitram_falcon.openapi import OpenAPIResource
from chitram_falcon.resources.auth import (
    ApiTokenResource,
    ApiTokensResource,
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
from chitram_falcon.resources.upload_url import UploadUrlResource
from chitram_falcon.resources.uploads import UploadResource as ResumableResource
from chitram_falcon.resources.uploads import UploadsResource
from chitram_falcon.security import SecurityHeaders

log = logging.getLogger("chitram_falcon")

API = "/api/v1"

Extension = Callable[["ChitramApp"], None]
"""Mounts extra routes (a web UI, host endpoints) on the app; reads ``app.handle.chitram``."""


def create_app(
    chitram: Chitram | None = None,
    settings: Settings | None = None,
    *,
    extensions: Iterable[Extension] = (),
    web_ui: bool | None = None,
    observer: Observer | None = None,
) -> ChitramApp:
    """The reference ASGI app.

    With ``chitram`` the host owns its lifecycle (open it before serving, close it after);
    without, the app opens one from ``settings`` (default: ``Settings.from_env()``) in the ASGI
    lifespan and closes it at shutdown. Settings are read and checked here, so a bad
    configuration fails before the server binds. ``extensions`` mount extra routes; the web UI
    (``chitram_falcon.web``, when installed and ``settings.web_ui``) is mounted the same way.
    ``observer`` (without ``chitram``): the opened instance's, which also observes the requests;
    with ``chitram``, requests go to ``chitram.observer``.
    """
    if chitram is not None:
        settings = chitram.settings
    elif settings is None:
        settings = Settings.from_env()
    settings.check_production()
    if chitram is None:
        settings = settings.with_jwt_secret()
    handle = ChitramHandle(chitram, settings, observer)
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
    app.add_route(f"{API}/auth/tokens", ApiTokensResource(handle))
    app.add_route(f"{API}/auth/tokens/{{token_id}}", ApiTokenResource(handle))
    app.add_route(f"{API}/images/upload", UploadResource(handle))
    app.add_route(f"{API}/images/upload-url", UploadUrlResource(handle))
    app.add_route(f"{API}/images", ImageListResource(handle))
    app.add_route(f"{API}/images/{{image_id}}", ImageResource(handle))
    app.add_route(f"{API}/images/{{image_id}}/file", ImageFileResource(handle))
    app.add_route(f"{API}/images/{{image_id}}/thumbnail", ThumbnailResource(handle))
    app.add_route(f"{API}/images/{{image_id}}/variants/{{spec}}", VariantResource(handle))
    # resumable uploads (tus 1.0.0)
    app.add_route(f"{API}/uploads", UploadsResource(handle))
    app.add_route(f"{API}/uploads/{{upload_id}}", ResumableResource(handle))
    app.add_route("/openapi.json", OpenAPIResource())
    add_docs(app)  # /docs: the explorer of /openapi.json
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
