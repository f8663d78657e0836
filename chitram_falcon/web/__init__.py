"""The reference web UI: gallery, upload, image pages and sign-in, served by ``chitram_falcon``.

``create_app`` mounts it when ``settings.web_ui`` is true; a host that builds its own app mounts
it with :func:`mount`. Everything it serves (HTML, CSS, JavaScript) comes from this package.
See docs/ui.md for how sessions and CSRF protection work.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import falcon
import falcon.asgi

from chitram_core.errors import ChitramError
from chitram_falcon import errors
from chitram_falcon.static import StaticFiles, StaticResource
from chitram_falcon.web.api import (
    ImageListApi,
    ResumableUploadApi,
    ResumableUploadsApi,
    UploadApi,
    UploadUrlApi,
)
from chitram_falcon.web.oauth import OAuthCallbackPage, OAuthLinkPage, OAuthStartPage
from chitram_falcon.web.pages import (
    DeletePage,
    GalleryPage,
    ImagePage,
    PasswordResetPage,
    RegisterPage,
    SignInPage,
    SignOutPage,
    TagAddPage,
    TagRemovePage,
    UploadPage,
)
from chitram_falcon.web.tokens import TokenRevokePage, TokensPage
from chitram_falcon.web.ui import WebUI

if TYPE_CHECKING:
    from chitram_falcon.asgi import ChitramApp

__all__ = ["WebUI", "mount"]

DEFAULT_PAGE_SIZE = 24


def mount(app: ChitramApp, *, prefix: str = "", page_size: int = DEFAULT_PAGE_SIZE) -> WebUI:
    """Add the UI's routes to ``app`` under ``prefix`` (``""``: the gallery is ``/``)."""
    prefix = prefix.rstrip("/")
    if not 1 <= page_size <= 100:
        raise ValueError("page_size must be between 1 and 100")
    static = StaticFiles("chitram_falcon.web", "static", "/ui/static")  # the UI adds its prefix
    ui = WebUI(app.handle, static, prefix=prefix, page_size=page_size)
    app.add_route(prefix + "/" if prefix == "" else prefix, GalleryPage(ui))
    app.add_route(f"{prefix}/signin", SignInPage(ui))
    app.add_route(f"{prefix}/register", RegisterPage(ui))
    app.add_route(f"{prefix}/signout", SignOutPage(ui))
    app.add_route(f"{prefix}/password-reset", PasswordResetPage(ui))
    app.add_route(f"{prefix}/upload", UploadPage(ui))
    app.add_route(f"{prefix}/images/{{image_id}}", ImagePage(ui))
    app.add_route(f"{prefix}/images/{{image_id}}/delete", DeletePage(ui))
    app.add_route(f"{prefix}/images/{{image_id}}/tags", TagAddPage(ui))
    app.add_route(f"{prefix}/images/{{image_id}}/tags/{{name}}/delete", TagRemovePage(ui))
    app.add_route(f"{prefix}/tokens", TokensPage(ui))
    app.add_route(f"{prefix}/tokens/{{token_id}}/revoke", TokenRevokePage(ui))
    app.add_route(f"{prefix}/ui/static/{{name}}", StaticResource(static))
    app.add_route(f"{prefix}/ui/api/images", ImageListApi(ui))
    app.add_route(f"{prefix}/ui/api/images/upload", UploadApi(ui))
    resumable = f"{prefix}/ui/api/uploads"
    app.add_route(resumable, ResumableUploadsApi(ui, resumable))
    app.add_route(f"{resumable}/{{upload_id}}", ResumableUploadApi(ui, resumable))
    app.add_route(f"{prefix}/ui/api/images/upload-url", UploadUrlApi(ui))
    # social sign-in
    app.add_route(f"{prefix}/auth/oauth/{{provider}}", OAuthStartPage(ui))
    app.add_route(f"{prefix}/auth/callback", OAuthCallbackPage(ui))
    app.add_route(f"{prefix}/auth/link/{{provider}}", OAuthLinkPage(ui))
    app.add_error_handler(falcon.HTTPRouteNotFound, _not_found(ui))
    return ui


NOT_FOUND = "There is no page at this address. Check the link, or go back to your images."
API_PATHS = ("/api/", "/openapi.json", "/health", "/docs")


def _not_found(ui: WebUI) -> Any:
    """Unknown paths: the UI's HTML 404 page for a browser (``Accept`` names ``text/html``)
    asking for a path that is not the API's; the API's JSON 404 for everyone else."""

    async def handle(
        req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: Any
    ) -> None:
        path = req.path
        wants_html = "text/html" in (req.get_header("Accept") or "").lower()
        ours = path.startswith(ui.prefix + "/") or path == ui.prefix
        if not wants_html or not ours or path.startswith(API_PATHS):
            await errors.handle_falcon_error(req, resp, ex, params)
            return
        with contextlib.suppress(ChitramError):
            await ui.visit(req, resp)  # the navigation shows who is signed in
        ui.error_page(req, resp, 404, NOT_FOUND)

    return handle
