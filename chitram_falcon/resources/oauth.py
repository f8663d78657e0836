"""Social sign-in for API clients: start at the provider, finish with the code (PKCE).

``GET /api/v1/auth/oauth/{provider}?redirect_to=...`` answers 302 to the provider (through
Supabase); its JSON body carries the ``state`` and, unless the client sent its own
``code_challenge``, the ``code_verifier`` the client keeps. The user comes back to
``redirect_to?state=...&code=...``; the client checks ``state`` and posts
``{code, code_verifier}`` to ``POST /api/v1/auth/oauth/token`` for an AuthResponse.
"""

from __future__ import annotations

import falcon
import falcon.asgi

from chitram_core import to_json
from chitram_core.errors import InvalidRequest, ValidationError
from chitram_falcon.context import ChitramHandle, read_fields, required_str


class OAuthStartResource:
    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, provider: str
    ) -> None:
        redirect_to = req.get_param("redirect_to")
        if not redirect_to:
            raise ValidationError("The query parameter 'redirect_to' is required")
        challenge = req.get_param("code_challenge")
        method = req.get_param("code_challenge_method")
        if method is not None and method.lower() != "s256":
            raise InvalidRequest("code_challenge_method must be S256")
        start = await self.handle.chitram.auth.oauth_start(
            provider, redirect_to, code_challenge=challenge or None
        )
        resp.status = 302
        resp.location = start.url
        resp.cache_control = ["no-store"]
        body = {
            "url": start.url,
            "provider": start.provider,
            "state": start.state,
            "redirect_to": start.redirect_to,
        }
        if start.verifier is not None:
            body["code_verifier"] = start.verifier
        resp.media = body


class OAuthTokenResource:
    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        fields = await read_fields(req)
        code, verifier = required_str(fields, "code"), required_str(fields, "code_verifier")
        session = await self.handle.chitram.auth.oauth_finish(code, verifier)
        resp.media = to_json(session)
        resp.cache_control = ["no-store"]
