"""A fake GoTrue (Supabase Auth) server for tests: enough of the real HTTP API for supabase-py.

It runs on 127.0.0.1 under uvicorn in a thread, so the real SDK makes real HTTP requests. Modes
simulate an outage: ``down`` (503), ``broken`` (500 with an HTML body), ``rate_limited`` (429)
and ``slow`` (every answer delayed by ``delay`` seconds).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from netkit import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
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


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _versioned() -> dict[str, str]:
    return {"x-supabase-api-version": API_VERSION}


def _error(status: int, code: str, message: str) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if code == "weak_password":
        body["weak_password"] = {"reasons": ["length"]}
    return JSONResponse(body, status, headers=_versioned())
