"""The error tree: every failure a caller can act on carries a stable code and an HTTP status.

The codes are public API (docs/http-api.md#errors); hosts map ``status`` onto their framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class ChitramError(Exception):
    """Base of every actionable Chitram failure."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    """The stable error code clients see (``detail.code``); each subclass has its own."""
    status: ClassVar[int] = 500
    """The HTTP status a host answers with."""
    default_message: ClassVar[str] = "Internal server error"
    """The message when none is given."""

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        """What went wrong, for people (``detail.message``)."""
        self.details: dict[str, Any] = dict(details)
        """Machine-readable specifics, e.g. the field (``detail.details``)."""
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The ``detail`` object of the HTTP error body: ``code``, ``message``, ``details``."""
        return {"code": self.code, "message": self.message, "details": self.details}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, details={self.details!r})"


class ValidationError(ChitramError):
    """A field of the request is out of range or malformed (422)."""

    code = "VALIDATION_ERROR"
    status = 422
    default_message = "The request is not valid"


class InvalidRequest(ChitramError):
    """The request cannot be served as asked (400); subclasses say why."""

    code = "INVALID_REQUEST"
    status = 400
    default_message = "The request is not valid"


class EmailExists(ChitramError):
    """Registration with an email that already has an account (400)."""

    code = "EMAIL_EXISTS"
    status = 400
    default_message = "An account with this email already exists"


class InvalidFileFormat(ChitramError):
    """The upload is in no accepted format (JPEG, PNG, GIF, WebP, AVIF; HEIC and JPEG XL with
    their extras), judged from its bytes (400)."""

    code = "INVALID_FILE_FORMAT"
    status = 400
    default_message = (
        "Unsupported file format: JPEG, PNG, GIF, WebP and AVIF are accepted (HEIC and JPEG XL "
        "with the chitram[heif] and chitram[jxl] extras)"
    )


class InvalidImage(ChitramError):
    """The upload claims a supported format but does not decode as one (400)."""

    code = "INVALID_IMAGE"
    status = 400
    default_message = "The file is not a valid image"


class ImageTooLarge(ChitramError):
    """The image's pixels or a side are over the limits, or its decode cannot fit (400)."""

    code = "IMAGE_TOO_LARGE"
    status = 400
    default_message = "The image has too many pixels"


class FileTooLarge(ChitramError):
    """The body or file is over ``max_upload_bytes`` (413)."""

    code = "FILE_TOO_LARGE"
    status = 413
    default_message = "The file is too large"


class QuotaExceeded(ChitramError):
    """413: the upload would take the user past their bytes or images quota; nothing is kept."""

    code = "QUOTA_EXCEEDED"
    status = 413
    default_message = "The upload would pass your storage quota"


class Unauthorized(ChitramError):
    """No usable credentials: a bearer token is missing or not accepted (401)."""

    code = "UNAUTHORIZED"
    status = 401
    default_message = "Authentication required"


class InvalidToken(Unauthorized):
    """The bearer or refresh token is malformed, forged or revoked (401)."""

    code = "INVALID_TOKEN"
    default_message = "The token is invalid"


class TokenExpired(Unauthorized):
    """The token was valid but has expired (401)."""

    code = "TOKEN_EXPIRED"
    default_message = "The token has expired"


class InvalidCredentials(Unauthorized):
    """Wrong email or password (401)."""

    code = "INVALID_CREDENTIALS"
    default_message = "Incorrect email or password"


class UserInactive(Unauthorized):
    """The account exists but may not log in, e.g. an unconfirmed email (401)."""

    code = "USER_INACTIVE"
    default_message = "This account is disabled"


class Forbidden(ChitramError):
    """The caller is known but may not do this (403)."""

    code = "FORBIDDEN"
    status = 403
    default_message = "You are not allowed to do this"


class InsufficientScope(Forbidden):
    """403: the API token used lacks the scope this route needs (or the route takes none)."""

    code = "INSUFFICIENT_SCOPE"
    default_message = "The API token's scopes do not allow this"


class DeleteTokenRequired(Forbidden):
    """Deleting an anonymous upload needs its delete token (403)."""

    code = "DELETE_TOKEN_REQUIRED"
    default_message = "A delete token is required to delete an anonymous image"


class InvalidDeleteToken(Forbidden):
    """The delete token does not match the image (403)."""

    code = "INVALID_DELETE_TOKEN"
    default_message = "The delete token is not valid for this image"


class NotFound(ChitramError):
    """Nothing at this route or id (404)."""

    code = "NOT_FOUND"
    status = 404
    default_message = "Not found"


class ImageNotFound(NotFound):
    """No image with this id, or it was deleted (404)."""

    code = "IMAGE_NOT_FOUND"
    default_message = "Image not found"


class MethodNotAllowed(ChitramError):
    """The route exists but not with this method (405)."""

    code = "METHOD_NOT_ALLOWED"
    status = 405
    default_message = "Method not allowed"


class WeakPassword(ChitramError):
    """The password is too short, too common or too like the email (422)."""

    code = "WEAK_PASSWORD"
    status = 422
    default_message = "The password must be 8 to 1024 characters long"


class InvalidEmail(ChitramError):
    """The email address is not one that can receive mail (422)."""

    code = "INVALID_EMAIL"
    status = 422
    default_message = "The email address is not valid"


class RateLimitExceeded(ChitramError):
    """Too many requests in the window; ``retry_after`` says when to retry (429)."""

    code = "RATE_LIMIT_EXCEEDED"
    status = 429
    default_message = "Too many requests"

    def __init__(self, message: str | None = None, *, limit: int, retry_after: int) -> None:
        super().__init__(message, limit=limit, retry_after=retry_after)
        self.limit = limit
        """The limit that was exceeded (requests per window)."""
        self.retry_after = retry_after
        """Seconds until a retry can succeed (the ``Retry-After`` header)."""


class UploadNotFound(NotFound):
    """A resumable upload that does not exist, has expired, or is someone else's."""

    code = "UPLOAD_NOT_FOUND"
    default_message = "No such upload"


class OffsetMismatch(ChitramError):
    """A chunk sent for another offset than the upload's, or while another request writes to it."""

    code = "OFFSET_MISMATCH"
    status = 409
    default_message = "The chunk does not start at the upload's offset"


class ChecksumMismatch(ChitramError):
    """A chunk whose bytes do not match the checksum sent with it; the chunk is discarded."""

    code = "CHECKSUM_MISMATCH"
    status = 460
    default_message = "The chunk does not match its checksum"


class InternalError(ChitramError):
    """A failure of the server's own; shown to clients only as a generic 500."""

    code = "INTERNAL_ERROR"
    status = 500
    default_message = "Internal server error"


class ServiceUnavailable(ChitramError):
    """A dependency or a limit refuses for now; retry after ``retry_after`` (503)."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    default_message = "The service is temporarily unavailable"

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after
        """Seconds the client should wait before retrying (the ``Retry-After`` header)."""


class ProviderUnavailable(ServiceUnavailable):
    """The auth provider (or another outside service) is down (503)."""

    code = "PROVIDER_UNAVAILABLE"
    default_message = "The authentication provider is unavailable"


class ConfigurationError(ChitramError):
    """Raised at start-up for settings that cannot work; never reaches an HTTP client."""

    code = "INTERNAL_ERROR"
    status = 500
    default_message = "Invalid configuration"


class PluginError(ConfigurationError):
    """A plugin that is configured but cannot be loaded."""


# social sign-in
class AccountLinkRefused(InvalidRequest):
    """A Supabase identity whose email belongs to a local account with its own password: the
    account is linked only once its owner proves the password."""

    default_message = (
        "An account with this email already exists and has a password: sign in with your "
        "password first, then connect this sign-in method while signed in"
    )


# hardening
class RequestTimeout(ChitramError):
    """The client stopped sending the body, or took too long over it (408)."""

    code = "REQUEST_TIMEOUT"
    status = 408
    default_message = "The request body was not received in time"


# image-work engine
class DecodeTimeout(InvalidImage):
    """A decode ran past ``CHITRAM_DECODE_TIMEOUT``; its worker was killed."""

    default_message = "Decoding the image took too long"


class ImageWorkerCrashed(InvalidImage):
    """The worker process died during a job (a signal, the OOM killer, a decoder crash).

    It is the file's most likely cause, so it is a 400; background jobs retry it a bounded
    number of times before giving up.
    """

    default_message = "The image could not be decoded: the decoder stopped"


# tags


class TagNotFound(ChitramError):
    """The image has no tag of this name (404)."""

    code = "TAG_NOT_FOUND"
    status = 404
    default_message = "The tag is not on this image"


class TaggerUnavailable(ProviderUnavailable):
    """A tagger could not answer now (down, timed out, overloaded); the job retries later."""

    default_message = "The image tagger is unavailable"


# Upload by URL and the moderation gate.


class UrlNotAllowed(ChitramError):
    """A URL the server will not fetch: its scheme, port or an address it leads to (a name's
    answer or a redirect hop) is not open to fetches."""

    code = "URL_NOT_ALLOWED"
    status = 400
    default_message = "The URL may not be fetched"


class FetchFailed(ChitramError):
    """The remote server did not hand over the image (DNS, refused, an error answer, a
    timeout); the message says which. Its fault, not ours: shown as it is, never as a 500."""

    code = "FETCH_FAILED"
    status = 502
    default_message = "The image could not be fetched"


class ContentRejected(ChitramError):
    """A moderator refused the upload; nothing of it was kept."""

    code = "CONTENT_REJECTED"
    status = 422
    default_message = "The image was rejected by moderation"


class ModeratorUnavailable(ProviderUnavailable):
    """A moderator could not answer (down, timed out, a bad answer)."""

    default_message = "The moderation service is unavailable"


# Administration (``chitram.admin``, the ``chitram`` command): an operator's mistakes. They
# carry the codes of their bases, so the list below (what an HTTP client can see) is unchanged.


class UserNotFound(NotFound):
    """An admin operation named a user (by id or email) that does not exist."""

    default_message = "No such user"


class InvalidRevision(InvalidRequest):
    """A migration revision that is unknown, or that the schema cannot move to from here."""

    default_message = "Unknown or unreachable migration revision"


class OperationUnavailable(InvalidRequest):
    """An admin operation that cannot run on what the admin surface at hand has opened: a sweep
    needs the whole SDK (``chitram.admin``, not ``Admin.open``), and data operations need the
    schema at the head (run the migrations first)."""

    default_message = "This operation needs an open Chitram"


ERRORS_BY_CODE: Mapping[str, type[ChitramError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        InvalidRequest,
        EmailExists,
        InvalidFileFormat,
        InvalidImage,
        ImageTooLarge,
        FileTooLarge,
        QuotaExceeded,
        Unauthorized,
        InvalidToken,
        TokenExpired,
        InvalidCredentials,
        UserInactive,
        Forbidden,
        InsufficientScope,
        DeleteTokenRequired,
        InvalidDeleteToken,
        NotFound,
        ImageNotFound,
        MethodNotAllowed,
        WeakPassword,
        InvalidEmail,
        RateLimitExceeded,
        InternalError,
        ServiceUnavailable,
        ProviderUnavailable,
        RequestTimeout,
        TagNotFound,
        UploadNotFound,
        OffsetMismatch,
        ChecksumMismatch,
        UrlNotAllowed,
        FetchFailed,
        ContentRejected,
    )
}
"""Every code a client can see, and its class: the one list (the OpenAPI document's included)."""


def is_internal(failure: ChitramError | int) -> bool:
    """Whether a failure (or an HTTP status) is the server's own fault, to be logged and shown
    to the client only as a generic 500: every 5xx except 503, which asks the client to retry
    (``SERVICE_UNAVAILABLE``, ``PROVIDER_UNAVAILABLE``) and keeps its message, and a remote server's
    failure (``FETCH_FAILED``, 502), whose reason the client needs."""
    if isinstance(failure, ServiceUnavailable | FetchFailed):
        return False
    status = failure if isinstance(failure, int) else failure.status
    return status >= 500 and status != 503


def check_limit(value: int, *, high: int = 100, field: str = "limit") -> int:
    """``value`` when it is a page size from 1 to ``high``; else :class:`ValidationError`."""
    if not 1 <= value <= high:
        raise ValidationError(f"{field} must be between 1 and {high}", field=field)
    return value
