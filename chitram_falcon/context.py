"""What every resource needs besides the SDK call itself: the open Chitram, the caller, the
client address, rate-limit headers and small request bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import falcon.asgi

from chitram_core import Chitram, Principal, Session, Settings
from chitram_core.auth import rules
from chitram_core.auth.api_tokens import require_scope, require_session
from chitram_core.cache.base import RateDecision
from chitram_core.errors import (
    FileTooLarge,
    InvalidCredentials,
    InvalidEmail,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
)
from chitram_core.limits import client_address, rate_limit_identity
from chitram_core.limits.addresses import relayed_for
from chitram_core.limits.logins import LoginGuard
from chitram_core.observe import Observer
from chitram_core.settings import RateLimit
from chitram_falcon import access
from chitram_falcon.http import bearer_token

log = logging.getLogger("chitram_falcon")

MAX_FORM_BYTES = 64 * 1024
"""Auth bodies are a few hundred bytes; anything far bigger is refused before it is parsed."""

MAX_JSON_DEPTH = 32
"""Deeper bodies are refused before parsing: ``json.loads`` recurses once per level."""

_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")


class ChitramHandle:
    """The Chitram instance behind an app: given by the host, or opened in the ASGI lifespan.

    Falcon calls ``process_startup`` / ``process_shutdown`` from one task, so the instance's
    task group is entered and left in the same task, as anyio requires.
    """

    opener: Callable[..., Chitram] = Chitram
    """How the lifespan makes the instance it owns, called as ``opener(settings,
    observer=...)`` (tests swap in ``background=False``)."""

    def __init__(
        self, chitram: Chitram | None, settings: Settings, observer: Observer | None = None
    ) -> None:
        self._chitram = chitram
        self.owned = chitram is None
        self.settings = settings
        self.observer: Observer = (
            chitram.observer if chitram is not None else observer or Observer()
        )
        """The instance's observer, known before the lifespan opens it: requests are
        observed from the first one."""
        self.after_open: list[Callable[[], None]] = []
        """Called once the lifespan has opened the instance (``chitram serve`` freezes the
        garbage collector's view of the heap there: ``chitram_falcon.cli.freeze_heap``)."""

    @property
    def chitram(self) -> Chitram:
        if self._chitram is None:
            raise ServiceUnavailable(
                "The service is starting: the Chitram instance is not open yet "
                "(run the app with an ASGI lifespan, or pass an open Chitram to create_app)",
                retry_after=1,
            )
        return self._chitram

    @property
    def is_open(self) -> bool:
        return self._chitram is not None

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        if self.owned and self._chitram is None:
            chitram = self.opener(self.settings, observer=self.observer)
            await chitram.__aenter__()
            self._chitram = chitram
            log.info(
                "chitram opened (database %s, driver %s)",
                _redacted(self.settings.resolved_database_url),
                chitram.database.engine.dialect.driver,
            )
            for step in self.after_open:
                step()

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        access.flush()  # the access lines of the last requests are written before we go
        if self.owned and self._chitram is not None:
            chitram, self._chitram = self._chitram, None
            await chitram.__aexit__(None, None, None)


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest


ACCOUNT = "account"
"""The ``scope`` of routes only a signed-in session may use: API tokens get 403 there."""
ANY = "any"
"""The ``scope`` of routes any API token may use (who am I, my usage)."""
READ, WRITE, DELETE, TAGS = "images:read", "images:write", "images:delete", "tags:write"
"""The API token scopes, one per class of routes (``chitram_core.auth.api_tokens.SCOPES``)."""


async def authenticate(
    req: falcon.asgi.Request, chitram: Chitram, *, required: bool, scope: str = ACCOUNT
) -> Principal | None:
    """The caller, from the Authorization header only (never the body).

    A token that is present but bad is always a 401, even where anonymity is allowed. An API
    token without ``scope`` is a 403 ``INSUFFICIENT_SCOPE``; routes that declare no scope
    (``ACCOUNT``: the account, its tokens) refuse API tokens altogether.
    """
    token = bearer_token(req.get_header("Authorization"))
    if token is None:
        if required:
            raise Unauthorized("Authentication required: send 'Authorization: Bearer <token>'")
        return None
    principal = await chitram.auth.authenticate(token)
    if scope == ACCOUNT:
        require_session(principal)
    elif scope != ANY:
        require_scope(principal, scope)
    req.context.access_token = token
    return principal


def client_ip(req: falcon.asgi.Request, settings: Settings) -> str:
    """The client's address: the peer, or what a trusted proxy says in X-Forwarded-For,
    ``Forwarded`` or X-Real-IP (:func:`relayed_for`), the same everywhere it is used."""
    relayed = relayed_for(
        req.get_header("X-Forwarded-For"), req.get_header("Forwarded"), req.get_header("X-Real-IP")
    )
    return client_address(req.remote_addr, relayed, settings.trusted_proxies)


def client_bucket(req: falcon.asgi.Request, settings: Settings) -> str:
    """The client's rate-limit identity: its address, or its /64 for IPv6."""
    return rate_limit_identity(client_ip(req, settings))


async def limit_upload(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    chitram: Chitram,
    principal: Principal | None,
) -> str:
    """The upload rate limit (429), shared by every way of uploading, for the caller's
    identity: ``user:<id>``, or ``ip:<address>`` for an anonymous upload; that identity."""
    settings = chitram.settings
    identity = f"user:{principal.user_id}" if principal else f"ip:{client_bucket(req, settings)}"
    await rate_limit(resp, chitram, settings.upload_rate_limit, [("upload", identity)])
    return identity


async def rate_limit(
    resp: falcon.asgi.Response,
    chitram: Chitram,
    rule: RateLimit | None,
    buckets: list[tuple[str, str]],
) -> None:
    """Count one event in each ``(scope, identity)`` bucket; 429 on the first one over.

    The X-RateLimit headers describe the tightest bucket.
    """
    if rule is None:
        return
    tightest: RateDecision | None = None
    for scope, identity in buckets:
        decision = await chitram.rate_limiter.check(scope, identity, rule)
        if tightest is None or decision.remaining < tightest.remaining:
            tightest = decision
    if tightest is not None:
        resp.set_header("X-RateLimit-Limit", str(tightest.limit))
        resp.set_header("X-RateLimit-Remaining", str(max(0, tightest.remaining)))


async def auth_rate_limit(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    chitram: Chitram,
    action: str,
    email: str,
) -> None:
    """Register and reset: limited per client address and per email (any case). Sign-ins:
    per client address and per (email, client address), so nobody else's attempts count
    against a client, plus the login guard for an email under attack
    (:mod:`chitram_core.limits.logins`).

    The API routes and the web UI's forms count in the same buckets, so a browser is no way
    around the API's limits.
    """
    client = client_bucket(req, chitram.settings)
    email_key = _email_key(email)
    if action == "login":
        per_email = ("login:email-client", LoginGuard.pair(email_key, client))
    else:
        per_email = (f"{action}:email", email_key)
    await rate_limit(
        resp,
        chitram,
        chitram.settings.auth_rate_limit,
        [(f"{action}:client", client), per_email],
    )
    if action == "login":
        await chitram.login_guard.check(email_key, client)


async def log_in(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    chitram: Chitram,
    email: str,
    password: str,
) -> Session:
    """A rate-limited sign-in whose wrong passwords are counted by the login guard."""
    await auth_rate_limit(req, resp, chitram, "login", email)
    try:
        return await chitram.auth.login(email, password)
    except InvalidCredentials:
        client = client_bucket(req, chitram.settings)
        await chitram.login_guard.failed(_email_key(email), client)
        raise


def _email_key(email: str) -> str:
    """Malformed emails share one bucket rather than escaping the limit."""
    try:
        return rules.normalize_email(email)
    except InvalidEmail:
        return "<invalid>"


async def read_fields(
    req: falcon.asgi.Request, *, max_bytes: int = MAX_FORM_BYTES
) -> dict[str, Any]:
    """A small JSON object or urlencoded form as a dict; 413 past ``max_bytes``, 422 otherwise."""
    if req.content_length is not None and req.content_length > max_bytes:
        raise FileTooLarge("The request body is too large", max_bytes=max_bytes)
    body = await req.stream.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise FileTooLarge("The request body is too large", max_bytes=max_bytes)
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise ValidationError("The form body is not valid UTF-8") from None
    if media_type not in {"", "application/json"} and not media_type.endswith("+json"):
        raise ValidationError(
            "The request body must be JSON (application/json)", content_type=media_type
        )
    if not body.strip():
        raise ValidationError("The request body is required")
    if json_depth(body) > MAX_JSON_DEPTH:
        raise ValidationError(
            f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels", max_depth=MAX_JSON_DEPTH
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValidationError("The request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("The request body must be a JSON object")
    refuse_lone_surrogates(data)
    return data


def refuse_lone_surrogates(data: object) -> None:
    """422 when any string (key or value) in parsed JSON holds a lone surrogate such as
    ``"\\ud800"``: valid JSON, but not text, and it fails later wherever it is encoded (a hash,
    the database driver). Checked here, once, so no route ever sees one."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            strings: list[Any] = [value]
        elif isinstance(value, dict):
            strings = list(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            strings = []
            pending.extend(value)
        else:
            continue
        for text in strings:
            if isinstance(text, str) and not _is_text(text):
                raise ValidationError(
                    "The request body holds a string that is not valid Unicode text "
                    "(a lone surrogate escape such as \\ud800)"
                )


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_depth(body: bytes) -> int:
    """The deepest array/object nesting in ``body``, brackets inside strings not counted; a
    linear scan that never recurses, so any input is safe to measure."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif byte in _CLOSERS:
            depth -= 1
    return deepest


def required_str(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise ValidationError(f"The field '{name}' is required", field=name)
    if not isinstance(value, str):
        raise ValidationError(f"The field '{name}' must be a string", field=name)
    return value


def optional_str(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"The field '{name}' must be a string", field=name)
    return value
