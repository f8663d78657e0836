"""The auth routes (docs/http-api.md#auth), over ``chitram.auth`` (the provider failover chain)."""

from __future__ import annotations

import falcon
import falcon.asgi

from chitram_core import to_json
from chitram_core.auth import rules
from chitram_core.errors import ValidationError
from chitram_falcon.context import (
    ANY,
    ChitramHandle,
    auth_rate_limit,
    authenticate,
    log_in,
    optional_str,
    read_fields,
    required_str,
)

RESET_MESSAGE = "If an account exists for this email, a password reset link has been sent"


class _AuthResource:
    def __init__(self, handle: ChitramHandle) -> None:
        self.handle = handle

    async def _limit(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, action: str, email: str
    ) -> None:
        await auth_rate_limit(req, resp, self.handle.chitram, action, email)


class RegisterResource(_AuthResource):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        fields = await read_fields(req)
        email, password = required_str(fields, "email"), required_str(fields, "password")
        await self._limit(req, resp, "register", email)
        session = await self.handle.chitram.auth.register(email, password)
        resp.status = 201
        resp.media = to_json(session)
        resp.cache_control = ["no-store"]


class LoginResource(_AuthResource):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        fields = await read_fields(req)
        email, password = required_str(fields, "email"), required_str(fields, "password")
        session = await log_in(req, resp, self.handle.chitram, email, password)
        resp.media = to_json(session)
        resp.cache_control = ["no-store"]


class TokenResource(_AuthResource):
    """The OAuth2 password flow (form fields ``username``, ``password``), as v1 served it."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        fields = await read_fields(req)
        username, password = required_str(fields, "username"), required_str(fields, "password")
        session = await log_in(req, resp, self.handle.chitram, username, password)
        resp.media = {"access_token": session.access_token, "token_type": session.token_type}
        resp.cache_control = ["no-store"]


class RefreshResource(_AuthResource):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        fields = await read_fields(req)
        session = await self.handle.chitram.auth.refresh(required_str(fields, "refresh_token"))
        resp.media = to_json(session)
        resp.cache_control = ["no-store"]


class LogoutResource(_AuthResource):
    """Revokes the session behind the bearer token (and the refresh token, if one is sent)."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=True)
        assert principal is not None
        refresh_token = None
        if req.content_length or req.get_header("Transfer-Encoding"):
            refresh_token = optional_str(await read_fields(req), "refresh_token")
        await chitram.auth.logout(
            principal, refresh_token, access_token=req.context.get("access_token")
        )
        resp.status = 204


class MeResource(_AuthResource):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=True, scope=ANY)
        assert principal is not None
        user = await chitram.auth.get_user(principal.user_id)
        usage = await chitram.users.usage(principal.user_id)
        resp.media = to_json(user) | {"usage": to_json(usage)}
        resp.cache_control = ["no-store"]


class ApiTokensResource(_AuthResource):
    """POST (make one; its secret is shown this once) and GET (list, no secrets)
    /api/v1/auth/tokens: a signed-in session only, never an API token."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=True)
        assert principal is not None
        fields = await read_fields(req)
        expires = fields.get("expires_in_days")
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
            raise ValidationError(
                "expires_in_days must be a whole number of days", field="expires_in_days"
            )
        scopes = fields.get("scopes")
        if not isinstance(scopes, list):
            raise ValidationError("scopes must be a list of scope names", field="scopes")
        created = await chitram.tokens.create(
            principal, required_str(fields, "name"), scopes, expires
        )
        resp.status = 201
        resp.media = to_json(created)
        resp.cache_control = ["no-store"]

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=True)
        assert principal is not None
        resp.media = to_json(await chitram.tokens.list(principal))
        resp.cache_control = ["no-store"]


class ApiTokenResource(_AuthResource):
    """DELETE /api/v1/auth/tokens/{id}: revoke one of the caller's tokens."""

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, token_id: str
    ) -> None:
        chitram = self.handle.chitram
        principal = await authenticate(req, chitram, required=True)
        assert principal is not None
        await chitram.tokens.revoke(principal, token_id)
        resp.status = 204


class PasswordResetResource(_AuthResource):
    """202 with the same message whether or not the email has an account."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        fields = await read_fields(req)
        email = required_str(fields, "email")
        rules.clean_email(email)
        await self._limit(req, resp, "reset", email)
        await self.handle.chitram.auth.request_password_reset(email)
        resp.status = 202
        resp.media = {"message": RESET_MESSAGE}
