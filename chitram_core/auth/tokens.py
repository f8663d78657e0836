"""Local tokens: HS256 access JWTs and opaque refresh tokens that are stored only as hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from typing import Any

import jwt

from chitram_core.errors import InvalidToken, TokenExpired

REFRESH_PREFIX = "chrt_"
"""Marks a refresh token as local, so the chain can route it without asking anyone."""


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT without checking it; None when it is not a JWT at all."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def unverified_issuer(token: str) -> str | None:
    claims = unverified_claims(token)
    issuer = claims.get("iss") if claims else None
    return issuer if isinstance(issuer, str) else None


def encode_access_token(
    *,
    secret: str,
    issuer: str,
    subject: str,
    email: str,
    session_id: str,
    now: float,
    ttl: int,
) -> str:
    claims = {
        "iss": issuer,
        "sub": subject,
        "email": email,
        "sid": session_id,
        "jti": uuid.uuid4().hex,
        "iat": int(now),
        "exp": int(now) + ttl,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_access_token(token: str, *, secret: str, issuer: str) -> dict[str, Any]:
    """Verified claims; TokenExpired or InvalidToken otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "sub", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired() from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    return claims


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def successor_refresh_token(secret: str, parent: str) -> str:
    """The token that replaces ``parent`` on rotation: derived, so a parallel refresh of the same
    parent within the reuse interval can be given the same one, and unguessable without the
    server secret."""
    mac = hmac.new(secret.encode("utf-8"), b"refresh-successor\0" + parent.encode(), "sha256")
    return REFRESH_PREFIX + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
