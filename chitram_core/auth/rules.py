"""Email and password rules shared by every provider, so the chain answers the same everywhere."""

from __future__ import annotations

import re

from chitram_core.errors import InvalidEmail, WeakPassword

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 320

# Deliberately loose: one "@", no spaces, a dotted domain. Deliverability is the mailer's job.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(?:\.[^@\s.]+)+")


def normalize_email(email: str) -> str:
    """The key an email is unique under: stripped and lower-cased; InvalidEmail if malformed."""
    return clean_email(email).lower()


def clean_email(email: str) -> str:
    """The email as the user typed it, stripped; InvalidEmail if malformed."""
    if not isinstance(email, str):
        raise InvalidEmail()
    value = email.strip()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(value):
        raise InvalidEmail()
    return value


def check_password(password: str) -> None:
    """WeakPassword unless 8..1024 characters; long passwords are fine (argon2 has no cap)."""
    if not isinstance(password, str) or not (
        MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
    ):
        raise WeakPassword()


def password_in_range(password: str) -> bool:
    """At login a password outside the rules cannot match, so it is refused without hashing."""
    return isinstance(password, str) and (
        MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
    )
