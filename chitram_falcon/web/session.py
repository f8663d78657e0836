"""The browser session: an HttpOnly cookie carrying the SDK's tokens, and the CSRF token tied to it.

The cookie is stateless (any app process that shares the JWT secret can read it) and signed, so
a client cannot plant a CSRF seed of its own choosing. It holds a random CSRF seed for every
visitor, and the access and refresh tokens once signed in. Scripts never see it (HttpOnly); the
page carries the CSRF token derived from the seed instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

import attrs
import falcon.asgi

from chitram_core import Settings
from chitram_falcon.security import request_is_https

COOKIE = "chitram_session"
SECURE_COOKIE = "__Host-chitram_session"
"""Over https the ``__Host-`` prefix makes the browser insist on Secure, Path=/ and no Domain."""

MAX_COOKIE_CHARS = 3800


@attrs.frozen
class WebSession:
    seed: str
    access_token: str | None = None
    refresh_token: str | None = None
    oauth: PendingOAuth | None = None
    """A social sign-in under way: what the callback checks and needs (never in a URL)."""

    @classmethod
    def anonymous(cls) -> WebSession:
        return cls(seed=secrets.token_urlsafe(24))

    @property
    def signed_in(self) -> bool:
        return self.access_token is not None


@attrs.frozen
class PendingOAuth:
    state: str
    verifier: str
    next: str
    provider: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signs and reads the cookie value; derives the CSRF token of a session."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"chitram-web-session\0" + secret.encode()).digest()

    def _mac(self, label: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, label + b"\0" + data, hashlib.sha256).digest()

    def encode(self, session: WebSession) -> str:
        payload: dict[str, Any] = {"c": session.seed}
        if session.access_token is not None:
            payload["a"] = session.access_token
        if session.refresh_token is not None:
            payload["r"] = session.refresh_token
        if session.oauth is not None:
            pending = session.oauth
            payload["o"] = [pending.state, pending.verifier, pending.next, pending.provider]
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{_b64(self._mac(b'cookie', body.encode()))}"

    def decode(self, value: str | None) -> WebSession | None:
        """The session in a cookie value; None for anything missing, altered or malformed."""
        if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        try:
            expected = _b64(self._mac(b"cookie", body.encode()))
            if not hmac.compare_digest(expected, mac):
                return None
            payload = json.loads(_unb64(body))
        except (ValueError, UnicodeError):
            return None
        if not isinstance(payload, dict):
            return None
        seed, access, refresh = payload.get("c"), payload.get("a"), payload.get("r")
        if not isinstance(seed, str) or not seed:
            return None
        if not isinstance(access, str | None) or not isinstance(refresh, str | None):
            return None
        pending = payload.get("o")
        oauth = None
        if (
            isinstance(pending, list)
            and len(pending) == 4
            and all(isinstance(p, str) for p in pending)
        ):
            oauth = PendingOAuth(*pending)
        return WebSession(seed=seed, access_token=access, refresh_token=refresh, oauth=oauth)

    def csrf_token(self, session: WebSession) -> str:
        return _b64(self._mac(b"csrf", session.seed.encode()))

    def csrf_valid(self, session: WebSession, supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(self.csrf_token(session), supplied or "")


def cookie_secure(req: falcon.asgi.Request, settings: Settings) -> bool:
    """``settings.cookie_secure`` when set; otherwise whether the browser came over https
    (directly, or through a trusted proxy that says so in ``X-Forwarded-Proto``)."""
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    return request_is_https(req, settings)


def cookie_name(secure: bool) -> str:
    return SECURE_COOKIE if secure else COOKIE


def read_cookie(req: falcon.asgi.Request, secure: bool) -> str | None:
    values = req.get_cookie_values(cookie_name(secure))
    return values[0] if values else None


def write_cookie(
    resp: falcon.asgi.Response, value: str, *, secure: bool, max_age: int | None
) -> None:
    resp.set_cookie(
        cookie_name(secure),
        value,
        max_age=max_age,
        path="/",
        secure=secure,
        http_only=True,
        same_site="Lax",
    )
