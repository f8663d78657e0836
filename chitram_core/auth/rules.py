"""Email and password rules shared by every provider, so the chain answers the same everywhere.

Emails are checked by email-validator (syntax only, never DNS) after NFKC normalisation; an
address holding a control, format (zero-width, bidi override), private-use or unassigned
character is refused outright, so ``a\\u200bb@example.com`` can never be a second account of
``ab@example.com``. The unique key is NFKC + case-folded.

Passwords: 8..1024 characters, not one character repeated, not the email, and (unless the host
turns it off) not in the shipped list of common passwords.
"""

from __future__ import annotations

import functools
import gzip
import unicodedata
from importlib import resources

import email_validator

from chitram_core.errors import InvalidEmail, WeakPassword

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 320
COMMON_PASSWORDS = "common-passwords.txt.gz"

# Control, format (ZWSP, ZWJ, RLO, BOM...), surrogate, private use, unassigned, line/paragraph
# separators: nothing a person types into an address, and everything that makes look-alikes.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def normalize_email(email: str) -> str:
    """The key an email is unique under: NFKC and case-folded; InvalidEmail if malformed."""
    return unicodedata.normalize("NFKC", clean_email(email).casefold())


def clean_email(email: str) -> str:
    """The email as the user typed it (stripped, NFKC, domain lower-cased); InvalidEmail if
    malformed or holding invisible or control characters."""
    if not isinstance(email, str):
        raise InvalidEmail()
    value = unicodedata.normalize("NFKC", email.strip())
    if not value or len(value) > MAX_EMAIL_LENGTH:
        raise InvalidEmail()
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES or char.isspace():
            raise InvalidEmail(
                "The email address contains an invisible or control character",
                character=f"U+{ord(char):04X}",
            )
    try:
        checked = email_validator.validate_email(
            value, check_deliverability=False, allow_smtputf8=True
        )
    except email_validator.EmailNotValidError as exc:
        raise InvalidEmail(f"The email address is not valid: {exc}") from None
    return str(checked.normalized)


def check_password(password: str, *, email: str | None = None, common_check: bool = True) -> None:
    """WeakPassword unless the password is long enough, not trivially guessable and not the
    email; long passwords are fine (argon2 has no length cap)."""
    if not isinstance(password, str) or not (
        MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
    ):
        raise WeakPassword(
            f"The password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
        )
    if len(set(password)) == 1:
        raise WeakPassword("The password must not be one character repeated")
    folded = unicodedata.normalize("NFKC", password.strip()).casefold()
    if email is not None:
        address = unicodedata.normalize("NFKC", email.strip()).casefold()
        if folded in {address, address.split("@", 1)[0]}:
            raise WeakPassword("The password must not be the email address")
    if common_check and folded in common_passwords():
        raise WeakPassword("This password is too common; choose one that is harder to guess")


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list (lower-cased, 8+ characters, from Django's common-passwords list)."""
    data = resources.files("chitram_core.auth").joinpath(COMMON_PASSWORDS).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def password_in_range(password: str) -> bool:
    """At login a password outside the rules cannot match, so it is refused without hashing."""
    return isinstance(password, str) and (
        MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
    )
