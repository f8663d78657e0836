"""What a supabase-py (GoTrue) failure means to Chitram: unavailability or a definite answer.

Apart from :mod:`chitram_core.auth.supabase` so the provider module stays about the flows; the
mapping is re-exported there as ``gotrue_error``.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pydantic
from supabase_auth.errors import AuthRetryableError, AuthUnknownError

from chitram_core.errors import (
    ChitramError,
    EmailExists,
    InvalidCredentials,
    InvalidEmail,
    InvalidToken,
    ProviderUnavailable,
    TokenExpired,
    UserInactive,
    WeakPassword,
)

CONFIRM_FIRST = "Confirm your email address, then log in"

CONFIRM_FIRST = "Confirm your email address, then log in"

# GoTrue error codes with a definite meaning, whatever the operation.
_CODES: dict[str, Callable[[], ChitramError]] = {
    "weak_password": WeakPassword,
    "user_already_exists": EmailExists,
    "email_exists": EmailExists,
    "identity_already_exists": EmailExists,
    "email_address_invalid": InvalidEmail,
    "email_address_not_authorized": InvalidEmail,
    "invalid_credentials": InvalidCredentials,
    "email_not_confirmed": lambda: UserInactive(CONFIRM_FIRST, confirmation_required=True),
    "user_banned": UserInactive,
    "bad_jwt": InvalidToken,
    "invalid_jwt": InvalidToken,
    "session_not_found": InvalidToken,
    "session_expired": TokenExpired,
    "refresh_token_not_found": InvalidToken,
    "refresh_token_already_used": InvalidToken,
}


def gotrue_error(exc: Exception, default: Callable[[], ChitramError]) -> ChitramError:
    """Map a supabase-py failure: 5xx, 429, timeouts and connection errors are unavailability;
    400 / 401 / 403 / 422 are definite answers (by GoTrue code, else ``default``)."""
    if isinstance(exc, (TimeoutError, httpx.HTTPError, pydantic.ValidationError)):
        return ProviderUnavailable(f"Supabase did not answer usefully ({type(exc).__name__})")
    if isinstance(exc, (AuthRetryableError, AuthUnknownError)):
        return ProviderUnavailable(f"Supabase is unavailable: {exc}")
    status = int(getattr(exc, "status", 0) or 0)
    if status >= 500 or status == 429 or status == 0:
        return ProviderUnavailable(f"Supabase is unavailable (HTTP {status or 'error'})")
    code = getattr(exc, "code", None)
    factory = _CODES.get(code) if isinstance(code, str) else None
    return (factory or default)()
