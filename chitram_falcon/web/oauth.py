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
    is_internal,
)
from chitram_core.settings import Settings
from chitram_falcon.security import trusted_origin
from chitram_falcon.web.pages import SignInPage
from chitram_falcon.web.session import PendingOAuth
from chitram_falcon.web.social import LABELS
from chitram_falcon.web.ui import Visit, WebUI, html_errors

BAD_CALLBACK = "This sign-in attempt is not valid or was already used. Please start again."
DENIED = "Sign-in was cancelled at the provider. Please try again."
LINK_FIRST = (
    "An account with this email already exists and has a password. Sign in with your password "
    "below, and your {label} sign-in will be connected to it."
)


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
    def __init__(self, ui: WebUI) -> None:
        self.ui = ui

    @html_errors
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, provider: str
    ) -> None:
        visit = await self.ui.visit(req, resp)
        target = self.ui.safe_next(visit, req.get_param("next"))
        start = await self.ui.chitram.auth.oauth_start(
            provider,
            callback_url(req, visit, self.ui.chitram.settings, provider),
            check_redirect=False,
        )
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
            target = visit.url(f"/auth/oauth/{pending.provider}") + "?next=" + quote(pending.next)
            label = LABELS.get(pending.provider, pending.provider.capitalize())
            message = LINK_FIRST.format(label=label)
            self.signin._form(resp, visit, target, email="", error=message, status=exc.status)
            return
        except ChitramError as exc:
            if is_internal(exc):
                raise
            target = pending.next if pending is not None else visit.url("/")
            self.signin._form(resp, visit, target, email="", error=exc.message, status=exc.status)
            return
        self.ui.sign_in(resp, visit, session)
        self.ui.redirect(resp, pending.next)
