"""What every web UI resource shares: the visitor's session, CSRF checks, links, rendering."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
import falcon.asgi

from chitram_core import Chitram, Principal, Session
from chitram_core.errors import ChitramError, Forbidden, Unauthorized, is_internal
from chitram_core.models import Usage
from chitram_falcon.context import ChitramHandle
from chitram_falcon.security import Policy, use_policy
from chitram_falcon.static import StaticFiles
from chitram_falcon.web.session import (
    SessionCodec,
    WebSession,
    cookie_secure,
    read_cookie,
    write_cookie,
)
from chitram_falcon.web.templates import Markup, human_size, render

SAFE_FETCH_SITES = {"same-origin", "none"}


class CsrfRefused(Forbidden):
    """A state-changing request that did not come from our own pages."""


@attrs.define
class Visit:
    """One request's view of the visitor: their session, who they are, and where links point."""

    session: WebSession
    principal: Principal | None
    secure: bool
    csrf: str
    base: str
    """Path prefix of every UI link: the ASGI root path plus the UI's mount prefix."""
    root: str
    """The ASGI root path alone (the API's own paths hang from it)."""
    usage: Usage | None = None
    """What the signed-in visitor's images take (the header shows it)."""

    def url(self, path: str) -> str:
        return self.base + path


class WebUI:
    def __init__(
        self, handle: ChitramHandle, static: StaticFiles, *, prefix: str, page_size: int
    ) -> None:
        self.handle = handle
        self.static = static
        self.prefix = prefix
        self.page_size = page_size
        self.codec = SessionCodec(handle.settings.with_jwt_secret().signing_secret)

    @property
    def chitram(self) -> Chitram:
        return self.handle.chitram

    # Session ---------------------------------------------------------------------------------

    async def visit(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> Visit:
        """Read (and if needed renew) the visitor's session; remembered on ``req.context``."""
        settings = self.handle.settings
        secure = cookie_secure(req, settings)
        session = self.codec.decode(read_cookie(req, secure))
        changed = session is None
        if session is None:
            session = WebSession.anonymous()
        principal: Principal | None = None
        if session.access_token is not None:
            try:
                principal = await self.chitram.auth.authenticate(session.access_token)
            except Unauthorized:
                principal, session = await self._renew(session)
                changed = True
        root = req.root_path or ""
        usage = await self.chitram.users.usage(principal.user_id) if principal else None
        visit = Visit(
            session=session,
            principal=principal,
            secure=secure,
            csrf=self.codec.csrf_token(session),
            base=root + self.prefix,
            root=root,
            usage=usage,
        )
        req.context.visit = visit
        if changed:
            self.store(resp, visit, session)
        return visit

    async def _renew(self, session: WebSession) -> tuple[Principal | None, WebSession]:
        """An expired access token is swapped for a new one with the refresh token; a session
        the server no longer honours becomes anonymous (keeping its CSRF seed)."""
        if session.refresh_token is not None:
            try:
                renewed = await self.chitram.auth.refresh(session.refresh_token)
                principal = await self.chitram.auth.authenticate(renewed.access_token)
            except Unauthorized:
                pass
            else:
                return principal, WebSession(
                    seed=session.seed,
                    access_token=renewed.access_token,
                    refresh_token=renewed.refresh_token,
                )
        return None, WebSession(seed=session.seed)

    def store(self, resp: falcon.asgi.Response, visit: Visit, session: WebSession) -> None:
        visit.session = session
        visit.csrf = self.codec.csrf_token(session)
        max_age = self.handle.settings.refresh_token_ttl if session.signed_in else None
        write_cookie(resp, self.codec.encode(session), secure=visit.secure, max_age=max_age)

    def sign_in(self, resp: falcon.asgi.Response, visit: Visit, session: Session) -> None:
        """A new CSRF seed with every sign-in, so a token seen before it is worthless after."""
        fresh = WebSession.anonymous()
        self.store(
            resp,
            visit,
            WebSession(
                seed=fresh.seed,
                access_token=session.access_token,
                refresh_token=session.refresh_token,
            ),
        )

    async def sign_out(self, resp: falcon.asgi.Response, visit: Visit) -> None:
        """Revoke the session server-side (the refresh token's family), then forget it here."""
        if visit.principal is not None:
            await self.chitram.auth.logout(
                visit.principal,
                visit.session.refresh_token,
                access_token=visit.session.access_token,
            )
        visit.principal = None
        self.store(resp, visit, WebSession.anonymous())

    # CSRF ------------------------------------------------------------------------------------

    def check_origin(self, req: falcon.asgi.Request) -> None:
        """Refuse a state-changing request the browser says came from elsewhere (Fetch
        Metadata, then Origin). Called before the session is read, so a refused request never
        gets a cookie: a cross-site POST arrives without ours (SameSite=Lax), and answering it
        with a fresh one would sign the visitor out."""
        site = (req.get_header("Sec-Fetch-Site") or "").strip().lower()
        if site and site not in SAFE_FETCH_SITES:
            raise CsrfRefused("This request came from another site and was refused")
        origin = req.get_header("Origin")
        if origin is not None and not _same_origin(origin, req):
            raise CsrfRefused("This request came from another origin and was refused")

    def check_token(self, visit: Visit, supplied: str | None) -> None:
        """The session's CSRF token came with the request (form field or X-CSRF-Token)."""
        if not self.codec.csrf_valid(visit.session, supplied):
            raise CsrfRefused(
                "The form's security token is missing or out of date: reload the page and try again"
            )

    # Pages -----------------------------------------------------------------------------------

    def page(
        self,
        resp: falcon.asgi.Response,
        visit: Visit,
        *,
        title: str,
        body: Markup,
        status: int = 200,
        section: str = "",
    ) -> None:
        resp.status = status
        resp.content_type = "text/html; charset=utf-8"
        resp.text = render(
            "layout.html",
            title=title,
            body=body,
            nav=self._nav(visit, section),
            csrf=visit.csrf,
            css=visit.url(self.static.url("app.css")),
            js=visit.url(self.static.url("app.js")),
            icon=visit.url(self.static.url("icon.svg")),
            home=visit.url("/"),
        )
        resp.set_header("Cache-Control", "no-store")
        use_policy(resp, Policy.PAGE)  # its security headers: chitram_falcon/security.py

    def _nav(self, visit: Visit, section: str) -> Markup:
        def link(path: str, label: str, key: str) -> Markup:
            current = Markup(' aria-current="page"') if key == section else Markup("")
            return render("nav_link.html", href=visit.url(path), label=label, current=current)

        if visit.principal is None:
            return render(
                "nav_anonymous.html",
                signin=link("/signin", "Sign in", "signin"),
                register=link("/register", "Register", "register"),
            )
        return render(
            "nav_user.html",
            gallery=link("/", "My images", "gallery"),
            upload=link("/upload", "Upload", "upload"),
            tokens=link("/tokens", "API tokens", "tokens"),
            usage=_usage_text(visit.usage),
            email=visit.principal.email,
            signout=visit.url("/signout"),
            csrf=visit.csrf,
        )

    def error_page(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, status: int, message: str
    ) -> None:
        visit: Visit | None = req.context.get("visit")
        if visit is None:
            root = req.root_path or ""
            visit = Visit(
                session=WebSession.anonymous(),
                principal=None,
                secure=False,
                csrf="",
                base=root + self.prefix,
                root=root,
            )
        title = _TITLES.get(status, "Something went wrong")
        body = render("error.html", title=title, message=message, home=visit.url("/"))
        self.page(resp, visit, title=title, body=body, status=status)

    def redirect(self, resp: falcon.asgi.Response, location: str) -> None:
        resp.status = 303
        resp.location = location
        resp.set_header("Cache-Control", "no-store")

    def signin_url(self, visit: Visit, next_path: str) -> str:
        return visit.url("/signin") + "?next=" + quote(next_path, safe="/")

    def safe_next(self, visit: Visit, value: str | None) -> str:
        """Only a path inside the UI: never another host (``//evil``, ``/\\evil``, ``https:``)."""
        default = visit.url("/")
        if not value or not value.startswith(visit.base + "/") or value.startswith("//"):
            return default
        if "\\" in value or any(ord(c) < 0x20 for c in value) or urlsplit(value).netloc:
            return default
        return value


_TITLES = {
    400: "That did not work",
    401: "Please sign in",
    403: "Request refused",
    404: "Not found",
    413: "Too large",
    422: "That did not work",
    429: "Too many requests",
    503: "Temporarily unavailable",
}

Handler = Callable[..., Awaitable[None]]


def html_errors(method: Handler) -> Handler:
    """Render SDK errors (and CSRF refusals) raised by a page as an HTML page, not JSON."""

    @functools.wraps(method)
    async def responder(
        self: Any, req: falcon.asgi.Request, resp: falcon.asgi.Response, **params: Any
    ) -> None:
        ui: WebUI = self.ui
        try:
            await method(self, req, resp, **params)
        except ChitramError as exc:
            if is_internal(exc):
                raise
            ui.error_page(req, resp, exc.status, exc.message)
            for name, value in getattr(exc, "http_headers", {}).items():
                resp.set_header(name, value)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after:
                resp.set_header("Retry-After", str(max(1, int(retry_after))))

    return responder


def _same_origin(origin: str, req: falcon.asgi.Request) -> bool:
    """The Origin's host and port are the ones this request was sent to. (The scheme is not
    compared: behind a TLS-terminating proxy the app sees http while the browser says https.)"""
    if origin == "null":
        return False
    parts = urlsplit(origin)
    host = req.get_header("Host") or req.netloc
    return bool(parts.scheme in {"http", "https"} and parts.netloc) and (
        parts.netloc.lower() == host.lower()
    )


def _usage_text(usage: Usage | None) -> str:
    """``1.2 MB of 1.0 GB · 3 of 100 images`` (the limits only where there are any)."""
    if usage is None:
        return ""
    size = human_size(usage.bytes)
    if usage.quota_bytes is not None:
        size += f" of {human_size(usage.quota_bytes)}"
    count = f"{usage.images}"
    if usage.quota_images is not None:
        count += f" of {usage.quota_images}"
    noun = "image" if usage.images == 1 and usage.quota_images is None else "images"
    return f"{size} \u00b7 {count} {noun}"
