"""Social sign-in (OAuth through Supabase) with PKCE, done on the server.

The flow is GoTrue's own: the browser goes to ``{supabase}/auth/v1/authorize?provider=...``
with an S256 ``code_challenge``; after the provider, GoTrue sends it back to ``redirect_to`` with
``?code=``; whoever holds the matching ``code_verifier`` exchanges the code once at
``/token?grant_type=pkce`` for a session. The verifier never travels through the browser's URL
bar, and the ``state`` we add to ``redirect_to`` ties the answer to the request that started it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from chitram_core.errors import InvalidRequest
from chitram_core.models import Principal, Session
from chitram_core.settings import absolute_http_url

VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
"""RFC 7636 §4.1: 43..128 unreserved characters."""
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
"""base64url (no padding) of a SHA-256 digest."""
MAX_CODE = 512


@attrs.frozen(kw_only=True)
class OAuthStart:
    """Where to send the user, and what the caller keeps until they come back.

    ``verifier`` is None when the caller brought its own ``code_challenge`` (and so keeps its
    own verifier). ``redirect_to`` is the URL GoTrue returns to: the caller's, plus ``state``.
    """

    url: str
    provider: str
    state: str
    verifier: str | None
    redirect_to: str


@runtime_checkable
class OAuthProvider(Protocol):
    """An auth provider that can sign people in through an external identity provider."""

    name: str

    @property
    def oauth_providers(self) -> tuple[str, ...]: ...

    def oauth_start(
        self,
        provider: str,
        redirect_to: str,
        *,
        code_challenge: str | None = None,
        check_redirect: bool = True,
    ) -> OAuthStart: ...

    async def oauth_finish(
        self, code: str, verifier: str, *, principal: Principal | None = None
    ) -> Session: ...


def new_verifier() -> str:
    return secrets.token_urlsafe(48)  # 64 characters


def new_state() -> str:
    return secrets.token_urlsafe(24)


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_code(code: object, verifier: object) -> tuple[str, str]:
    """The code and verifier as GoTrue will take them; InvalidRequest for anything else."""
    if not isinstance(code, str) or not code or len(code) > MAX_CODE or not code.isprintable():
        raise InvalidRequest("The sign-in code is missing or malformed; start the sign-in again")
    if not isinstance(verifier, str) or not VERIFIER.fullmatch(verifier):
        raise InvalidRequest("code_verifier must be 43 to 128 unreserved characters (RFC 7636)")
    return code, verifier


def redirect_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    """``url`` is one of ``allowed``: the same scheme, host, port and path (case-insensitive
    host); its query may differ (clients carry their own values there), nothing else may."""
    if not absolute_http_url(url):
        return False
    target = _key(url)
    return any(absolute_http_url(entry) and _key(entry) == target for entry in allowed)


def _key(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}[parts.scheme]
    return parts.scheme, (parts.hostname or "").lower(), port, parts.path or "/"


def with_query(url: str, **values: str) -> str:
    """``url`` with ``values`` set in its query string (others kept, as GoTrue keeps them)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in values]
    query += list(values.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def authorize_url(auth_url: str, provider: str, redirect_to: str, code_challenge: str) -> str:
    query = urlencode(
        {
            "provider": provider,
            "redirect_to": redirect_to,
            "code_challenge": code_challenge,
            "code_challenge_method": "s256",
        }
    )
    return f"{auth_url}/authorize?{query}"


__all__ = [
    "OAuthProvider",
    "OAuthStart",
    "authorize_url",
    "challenge_of",
    "check_code",
    "new_state",
    "new_verifier",
    "redirect_allowed",
    "with_query",
]
