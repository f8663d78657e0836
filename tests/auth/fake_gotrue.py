"""A fake GoTrue (Supabase Auth) server for tests: enough of the real HTTP API for supabase-py.

It runs on 127.0.0.1 under uvicorn in a thread, so the real SDK makes real HTTP requests. Modes
simulate an outage: ``down`` (503), ``broken`` (500 with an HTML body), ``rate_limited`` (429)
and ``slow`` (every answer delayed by ``delay`` seconds).

Social sign-in speaks GoTrue's PKCE flow: ``GET /authorize?provider=&redirect_to=&code_challenge=
&code_challenge_method=s256`` sends the browser to a fake provider page (standing in for GitHub or
Google) whose "Authorize" form brings it back to ``redirect_to?code=`` (GoTrue keeps the query and
falls back to the site URL for a redirect_to outside its allow-list); ``POST /token?grant_type=
pkce`` with ``{auth_code, code_verifier}`` checks the S256 challenge and redeems a code once.
The provider page is not Supabase: the outage modes leave it up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from netkit import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

API_VERSION = "2024-01-01"


class FakeGoTrue:
    def __init__(self, jwt_secret: str = "fake-gotrue-jwt-secret-0123456789abcdef") -> None:
        self.jwt_secret = jwt_secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.url}/auth/v1"
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "fake-key-1"
        self.reset()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        self.mode = "up"
        self.delay = 0.0
        self.autoconfirm = True
        self.algorithm = "HS256"
        self.access_ttl = 3600
        self.min_password = 6
        self.allow_unconfirmed_login = False
        self.users: dict[str, dict[str, Any]] = {}  # by lower-cased email
        self.passwords: dict[str, str] = {}  # user id -> password
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.revoked_sessions: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        # social sign-in
        self.external_providers = {"github", "google"}
        self.site_url = "http://127.0.0.1:3000"
        self.redirect_allow_list: list[str] = []  # exact URLs, or prefixes ending in "**"
        self.flows: dict[str, dict[str, Any]] = {}  # flow id -> provider, redirect, challenge
        self.auth_codes: dict[str, str] = {}  # auth code -> flow id
        self.identity_confirmed = True

    # Server ---------------------------------------------------------------------------------

    def start(self) -> None:
        routes = [
            Route("/auth/v1/signup", self.signup, methods=["POST"]),
            Route("/auth/v1/token", self.token, methods=["POST"]),
            Route("/auth/v1/user", self.user, methods=["GET"]),
            Route("/auth/v1/recover", self.recover, methods=["POST"]),
            Route("/auth/v1/logout", self.logout, methods=["POST"]),
            Route("/auth/v1/health", self.health, methods=["GET"]),
            Route("/auth/v1/.well-known/jwks.json", self.jwks, methods=["GET"]),
            Route("/auth/v1/authorize", self.authorize, methods=["GET"]),
            Route("/provider/{provider}/authorize", self.provider_page, methods=["GET"]),
            Route("/provider/{provider}/authorize", self.provider_consent, methods=["POST"]),
        ]
        app = Starlette(routes=routes)
        app.add_middleware(_Outage, fake=self)  # type: ignore[arg-type]
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake GoTrue did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    # Helpers for tests ----------------------------------------------------------------------

    def confirm(self, email: str) -> None:
        user = self.users[email.lower()]
        user["email_confirmed_at"] = user["confirmed_at"] = _now()

    def add_user(self, email: str, password: str, *, confirmed: bool = True) -> dict[str, Any]:
        user = self._new_user(email, confirmed=confirmed)
        self.passwords[user["id"]] = password
        return user

    def access_token(self, user: dict[str, Any], session_id: str, *, exp: int | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user["id"],
            "aud": "authenticated",
            "role": "authenticated",
            "email": user["email"],
            "session_id": session_id,
            "iat": now,
            "exp": exp if exp is not None else now + self.access_ttl,
        }
        if self.algorithm == "ES256":
            return jwt.encode(claims, self.ec_key, algorithm="ES256", headers={"kid": self.kid})
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")

    def paths(self) -> list[str]:
        return [path for _method, path, _auth in self.requests]

    # Endpoints ------------------------------------------------------------------------------

    async def signup(self, request: Request) -> Response:
        body = await request.json()
        email, password = body.get("email"), body.get("password")
        if not email or "@" not in email:
            return _error(400, "email_address_invalid", "Unable to validate email address")
        if not password or len(password) < self.min_password:
            return _error(422, "weak_password", "Password should be at least 6 characters")
        if email.lower() in self.users:
            return _error(422, "user_already_exists", "User already registered")
        user = self.add_user(email, password, confirmed=self.autoconfirm)
        if not self.autoconfirm:
            return JSONResponse(user, headers=_versioned())
        return JSONResponse(self._session(user), headers=_versioned())

    async def token(self, request: Request) -> Response:
        body = await request.json()
        grant = request.query_params.get("grant_type")
        if grant == "password":
            user = self.users.get(str(body.get("email", "")).lower())
            if user is None or self.passwords.get(user["id"]) != body.get("password"):
                return _error(400, "invalid_credentials", "Invalid login credentials")
            if user["email_confirmed_at"] is None and not self.allow_unconfirmed_login:
                return _error(400, "email_not_confirmed", "Email not confirmed")
            if user.get("banned"):
                return _error(403, "user_banned", "User is banned")
            return JSONResponse(self._session(user), headers=_versioned())
        if grant == "refresh_token":
            record = self.refresh_tokens.get(str(body.get("refresh_token", "")))
            if record is None or record["session_id"] in self.revoked_sessions:
                return _error(400, "refresh_token_not_found", "Invalid Refresh Token")
            if record["used"]:
                self.revoked_sessions.add(record["session_id"])
                return _error(400, "refresh_token_already_used", "Invalid Refresh Token")
            record["used"] = True
            user = self._by_id(record["user_id"])
            return JSONResponse(
                self._session(user, session_id=record["session_id"]), headers=_versioned()
            )
        if grant == "pkce":
            return self._pkce(body)
        return _error(400, "validation_failed", "unsupported grant_type")

    async def user(self, request: Request) -> Response:
        claims = self._bearer(request)
        if claims is None:
            return _error(403, "bad_jwt", "invalid JWT")
        if claims.get("session_id") in self.revoked_sessions:
            return _error(403, "session_not_found", "Session not found")
        return JSONResponse(self._by_id(claims["sub"]), headers=_versioned())

    async def recover(self, request: Request) -> Response:
        body = await request.json()
        if not body.get("email"):
            return _error(422, "validation_failed", "email is required")
        return JSONResponse({}, headers=_versioned())

    async def logout(self, request: Request) -> Response:
        claims = self._bearer(request)
        if claims is None:
            return _error(403, "bad_jwt", "invalid JWT")
        self.revoked_sessions.add(claims.get("session_id", ""))
        return Response(status_code=204)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"name": "GoTrue", "version": "fake"})

    async def jwks(self, request: Request) -> Response:
        public = jwt.algorithms.ECAlgorithm.to_jwk(self.ec_key.public_key(), as_dict=True)
        public.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        return JSONResponse({"keys": [public]})

    # Social sign-in (PKCE) ---------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        provider = query.get("provider", "")
        if provider not in self.external_providers:
            return _error(
                400, "validation_failed", f"Unsupported provider: Provider {provider} not found"
            )
        challenge = query.get("code_challenge")
        method = (query.get("code_challenge_method") or "").lower()
        if challenge and method not in {"s256", "plain"}:
            return _error(400, "validation_failed", "unsupported code_challenge_method")
        flow_id = str(uuid.uuid4())
        self.flows[flow_id] = {
            "provider": provider,
            "redirect_to": self._redirect_target(query.get("redirect_to", "")),
            "challenge": challenge,
            "method": method,
        }
        return RedirectResponse(
            f"{self.url}/provider/{provider}/authorize?flow={flow_id}", status_code=302
        )

    async def provider_page(self, request: Request) -> Response:
        """The stand-in for GitHub's or Google's consent page."""
        provider = request.path_params["provider"]
        flow = html.escape(request.query_params.get("flow", ""))
        name = html.escape(provider.capitalize())
        page = (
            f"<!doctype html><title>Fake {name}</title><h1>Fake {name}</h1>"
            f'<form method="post" action="/provider/{html.escape(provider)}/authorize">'
            f'<input type="hidden" name="flow" value="{flow}">'
            '<label>Email <input name="email" type="email"></label>'
            '<button name="decision" value="allow">Authorize</button>'
            '<button name="decision" value="deny">Cancel</button></form>'
        )
        return HTMLResponse(page)

    async def provider_consent(self, request: Request) -> Response:
        """The provider approved (or not): GoTrue's callback work, then back to redirect_to."""
        form = dict(parse_qsl((await request.body()).decode()))
        flow = self.flows.get(str(form.get("flow", "")))
        if flow is None:
            return _error(404, "flow_state_not_found", "invalid flow state")
        target = flow["redirect_to"]
        if form.get("decision") != "allow":
            return RedirectResponse(
                _with_query(
                    target, error="access_denied", error_description="The user denied access"
                ),
                status_code=302,
            )
        email = str(form.get("email", ""))
        user = self.users.get(email.lower()) or self._new_user(
            email, confirmed=self.identity_confirmed
        )
        if self.identity_confirmed and user["email_confirmed_at"] is None:
            self.confirm(email)
        providers = user["app_metadata"]["providers"]
        if flow["provider"] not in providers:
            providers.append(flow["provider"])
        flow["user_id"] = user["id"]
        code = str(uuid.uuid4())
        self.auth_codes[code] = next(k for k, v in self.flows.items() if v is flow)
        return RedirectResponse(_with_query(target, code=code), status_code=302)

    def _pkce(self, body: dict[str, Any]) -> Response:
        code, verifier = body.get("auth_code"), body.get("code_verifier")
        if not code or not verifier:
            return _error(
                400,
                "validation_failed",
                "invalid request: both auth code and code verifier should be non-empty",
            )
        flow_id = self.auth_codes.get(str(code))
        flow = self.flows.get(flow_id or "")
        if flow is None or not flow.get("challenge"):
            return _error(
                404, "flow_state_not_found", "invalid flow state, no valid flow state found"
            )
        if flow["method"] == "s256":
            digest = hashlib.sha256(str(verifier).encode()).digest()
            computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        else:
            computed = str(verifier)
        if not secrets.compare_digest(computed, flow["challenge"]):
            return _error(
                400,
                "bad_code_verifier",
                "code challenge does not match previously saved code verifier",
            )
        del self.auth_codes[str(code)], self.flows[str(flow_id)]  # a code is redeemed once
        user = self._by_id(flow["user_id"])
        if user.get("banned"):
            return _error(403, "user_banned", "User is banned")
        return JSONResponse(self._session(user), headers=_versioned())

    def _redirect_target(self, redirect_to: str) -> str:
        """GoTrue's rule: the site's host, or an allow-list match; otherwise the site URL."""
        if redirect_to:
            site, target = urlsplit(self.site_url), urlsplit(redirect_to)
            if target.scheme in {"http", "https"} and target.hostname == site.hostname:
                return redirect_to
            for pattern in self.redirect_allow_list:
                if pattern.endswith("**") and redirect_to.startswith(pattern[:-2]):
                    return redirect_to
                if redirect_to == pattern:
                    return redirect_to
        return self.site_url

    # Internals ------------------------------------------------------------------------------

    def _new_user(self, email: str, *, confirmed: bool) -> dict[str, Any]:
        now = _now()
        user = {
            "id": str(uuid.uuid4()),
            "aud": "authenticated",
            "role": "authenticated",
            "email": email,
            "email_confirmed_at": now if confirmed else None,
            "confirmed_at": now if confirmed else None,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "identities": [],
            "created_at": now,
            "updated_at": now,
        }
        self.users[email.lower()] = user
        return user

    def _by_id(self, user_id: str) -> dict[str, Any]:
        return next(u for u in self.users.values() if u["id"] == user_id)

    def _session(self, user: dict[str, Any], *, session_id: str | None = None) -> dict[str, Any]:
        session_id = session_id or str(uuid.uuid4())
        refresh = secrets.token_urlsafe(9)
        self.refresh_tokens[refresh] = {
            "user_id": user["id"],
            "session_id": session_id,
            "used": False,
        }
        return {
            "access_token": self.access_token(user, session_id),
            "token_type": "bearer",
            "expires_in": self.access_ttl,
            "expires_at": int(time.time()) + self.access_ttl,
            "refresh_token": refresh,
            "user": user,
        }

    def _bearer(self, request: Request) -> dict[str, Any] | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip()
        try:
            if self.algorithm == "ES256":
                key: Any = self.ec_key.public_key()
                algorithms = ["ES256"]
            else:
                key, algorithms = self.jwt_secret, ["HS256"]
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=algorithms, audience="authenticated"
            )
        except jwt.PyJWTError:
            return None
        return claims


class _Outage:
    """ASGI middleware that records requests and plays the current outage mode."""

    def __init__(self, app: Any, fake: FakeGoTrue) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization")
        self.fake.requests.append((scope["method"], scope["path"], auth.decode() if auth else None))
        mode = self.fake.mode
        if scope["path"].startswith("/provider/"):
            mode = "up"  # the identity provider (GitHub, Google) is not Supabase
        if mode == "slow" or self.fake.delay:
            await asyncio.sleep(self.fake.delay)
        if mode == "down":
            response: Response = JSONResponse({"message": "Service Unavailable"}, 503)
        elif mode == "broken":
            response = PlainTextResponse("<html>Internal Server Error</html>", 500)
        elif mode == "rate_limited":
            response = _error(429, "over_request_rate_limit", "Too many requests")
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def _with_query(url: str, **values: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in values]
    return urlunsplit(parts._replace(query=urlencode([*query, *values.items()])))


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _versioned() -> dict[str, str]:
    return {"x-supabase-api-version": API_VERSION}


def _error(status: int, code: str, message: str) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if code == "weak_password":
        body["weak_password"] = {"reasons": ["length"]}
    return JSONResponse(body, status, headers=_versioned())
