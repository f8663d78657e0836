"""Social sign-in in the web UI: "Continue with GitHub", and the server-side callback.

The PKCE verifier, the ``state`` and where to go afterwards live in the signed HttpOnly session
cookie, never in page script or a URL. The callback is good once: it forgets the pending flow
whatever happens, checks ``state``, exchanges the code on the server and sets the same session
cookie as password sign-in.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote

import attrs
import falcon.asgi

from chitram_core.errors import (
    AccountLinkRefused,
    ChitramError,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    is_internal,
)
from chitram_core.settings import Settings
from chitram_falcon.security import trusted_origin
from chitram_falcon.web.pages import SignInPage
from chitram_falcon.web.session import PendingOAuth
from chitram_falcon.web.social import LABELS
from chitram_falcon.web.templates import render
from chitram_falcon.web.ui import Visit, WebUI, html_errors

BAD_CALLBACK = "This sign-in attempt is not valid or was already used. Please start again."
DENIED = "Sign-in was cancelled at the provider. Please try again."
LINK_FIRST = (
    "An account with this email already exists and has a password. Sign in with your password "
    "below, and your {label} sign-in will be connected to it."
)
UNAVAILABLE = (
    "{label} sign-in is unavailable right now. Please try again in a few minutes, or sign in "
    "with your email and password."
)


def label_of(provider: str) -> str:
    return LABELS.get(provider, provider.capitalize())


def unavailable(
    signin: SignInPage,
    resp: falcon.asgi.Response,
    visit: Visit,
    target: str,
    provider: str,
    exc: ProviderUnavailable,
) -> None:
    """The sign-in page saying, in words, that the provider is down (503, Retry-After)."""
    message = UNAVAILABLE.format(label=label_of(provider))
    signin._form(resp, visit, target, email="", error=message, status=503)
    resp.set_header("Retry-After", str(max(1, int(exc.retry_after or 30))))


NO_PUBLIC_URL = (
    "Social sign-in needs the server's public address: the administrator sets "
    "CHITRAM_PUBLIC_URL (e.g. https://img.example.org)."
)


def callback_url(req: falcon.asgi.Request, visit: Visit, settings: Settings, provider: str) -> str:
    """Where the provider sends the browser back: from ``CHITRAM_PUBLIC_URL``, never from a
    ``Host`` header a client chose (only a loopback Host is taken as is, for development)."""
    origin = trusted_origin(req, settings, visit.secure)
    if origin is None:
        if provider not in settings.oauth_providers:
            raise NotFound("This sign-in provider is not configured")
        raise InvalidRequest(NO_PUBLIC_URL)
    return f"{origin}{visit.url('/auth/callback')}"


class OAuthStartPage:
    """GET: the browser goes to Supabase only once Supabase answers (through the auth chain's
    breaker); otherwise the sign-in page says so."""

    def __init__(self, ui: WebUI) -> None:
        self.ui = ui
        self.signin = SignInPage(ui)

    @html_errors
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, provider: str
    ) -> None:
        visit = await self.ui.visit(req, resp)
        target = self.ui.safe_next(visit, req.get_param("next"))
        try:
            start = await self.ui.chitram.auth.oauth_start(
                provider,
                callback_url(req, visit, self.ui.chitram.settings, provider),
                check_redirect=False,
            )
        except ProviderUnavailable as exc:
            unavailable(self.signin, resp, visit, target, provider, exc)
            return
        assert start.verifier is not None
        pending = PendingOAuth(
            state=start.state, verifier=start.verifier, next=target, provider=provider
        )
        self.ui.store(resp, visit, attrs.evolve(visit.session, oauth=pending))
        self.ui.redirect(resp, start.url)


class OAuthCallbackPage:
    def __init__(self, ui: WebUI) -> None:
        self.ui = ui
        self.signin = SignInPage(ui)

    @html_errors
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit = await self.ui.visit(req, resp)
        pending = visit.session.oauth
        if pending is not None:  # good once, whatever happens next
            self.ui.store(resp, visit, attrs.evolve(visit.session, oauth=None))
        state, code = req.get_param("state") or "", req.get_param("code") or ""
        if visit.principal is not None and (
            pending is None or not state or not hmac.compare_digest(state, pending.state)
        ):
            self.ui.redirect(resp, visit.url("/"))  # a replayed callback: already signed in
            return
        try:
            if pending is None or not state or not hmac.compare_digest(state, pending.state):
                raise InvalidRequest(BAD_CALLBACK)
            if req.get_param("error") is not None:
                raise InvalidRequest(DENIED)
            if not code:
                raise InvalidRequest(BAD_CALLBACK)
            session = await self.ui.chitram.auth.oauth_finish(
                code, pending.verifier, principal=visit.principal
            )
        except AccountLinkRefused as exc:
            assert pending is not None
            # After the password sign-in, straight back through the provider: now it links.
            target = visit.url(f"/auth/link/{pending.provider}") + "?next=" + quote(pending.next)
            message = LINK_FIRST.format(label=label_of(pending.provider))
            self.signin._form(resp, visit, target, email="", error=message, status=exc.status)
            return
        except ProviderUnavailable as exc:
            assert pending is not None
            unavailable(self.signin, resp, visit, pending.next, pending.provider, exc)
            return
        except ChitramError as exc:
            if is_internal(exc):
                raise
            target = pending.next if pending is not None else visit.url("/")
            self.signin._form(resp, visit, target, email="", error=exc.message, status=exc.status)
            return
        self.ui.sign_in(resp, visit, session)
        self.ui.redirect(resp, pending.next)


class OAuthLinkPage:
    """GET ``/auth/link/{provider}``: where the password sign-in that connects a social sign-in
    lands. A page of our own (the page's ``form-action 'self'`` covers the whole redirect chain
    of a form post, so the post cannot end at Supabase), which sends the browser on to
    ``/auth/oauth/{provider}`` with a ``Refresh`` header (a plain navigation, not a form's),
    and offers the same as a link."""

    def __init__(self, ui: WebUI) -> None:
        self.ui = ui

    @html_errors
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, provider: str
    ) -> None:
        visit = await self.ui.visit(req, resp)
        target = self.ui.safe_next(visit, req.get_param("next"))
        onward = visit.url(f"/auth/oauth/{quote(provider, safe='')}") + "?next=" + quote(target)
        if visit.principal is None:
            here = visit.url(f"/auth/link/{quote(provider, safe='')}") + "?next=" + quote(target)
            self.ui.redirect(resp, self.ui.signin_url(visit, here))
            return
        if provider not in self.ui.chitram.auth.oauth_providers:
            raise InvalidRequest("This sign-in provider is not configured")
        label = label_of(provider)
        body = render("oauth_link.html", label=label, href=onward)
        self.ui.page(resp, visit, title=f"Connecting {label}", body=body)
        resp.set_header("Refresh", f"0; url={onward}")
