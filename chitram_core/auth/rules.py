"""Email and password rules shared by every provider, so the chain answers the same everywhere.

Emails are checked by email-validator (syntax only, never DNS) after NFKC normalisation; an
address holding a control, format (zero-width, bidi override), private-use or unassigned
character is refused outright, so ``a\\u200bb@example.com`` can never be a second account of
``ab@example.com``. The unique key is NFKC + lower-cased, not case-folded: ``straße@`` and
``strasse@`` are two mailboxes (case folding maps ß to ss), as are ``faß.de`` and ``fass.de``.
A local part mixing Latin with Cyrillic or Greek letters (an ``alice@`` whose first letter
is U+0430, Cyrillic) is refused: it can only be there to look like another address.

Passwords: 8..1024 characters, not one character repeated, not the email, and (unless the host
turns it off) not in the shipped list of common passwords and strong enough by the zxcvbn
estimator (score ``CHITRAM_PASSWORD_MIN_SCORE``, default 3 of 4).
"""

from __future__ import annotations

import functools
import gzip
import unicodedata
from importlib import resources

import anyio.to_thread
import email_validator
from zxcvbn import zxcvbn

from chitram_core.errors import InvalidEmail, WeakPassword

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 320
COMMON_PASSWORDS = "common-passwords.txt.gz"
ESTIMATED_LENGTH = 72
"""The estimator sees this many leading characters (its own cap; its time grows with length)."""
DEFAULT_MIN_SCORE = 3
LOOK_ALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")
"""Scripts whose letters pass for each other; a local part may use only one of them."""

# Control, format (ZWSP, ZWJ, RLO, BOM...), surrogate, private use, unassigned, line/paragraph
# separators: nothing a person types into an address, and everything that makes look-alikes.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def normalize_email(email: str) -> str:
    """The key an email is unique under: NFKC and lower-cased; InvalidEmail if malformed."""
    return email_key(clean_email(email))


def email_key(cleaned: str) -> str:
    """The unique key of an already cleaned email (also what the migration re-keys rows by)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", cleaned).lower())


def mixed_scripts(local_part: str) -> tuple[str, ...]:
    """The look-alike scripts (of :data:`LOOK_ALIKE_SCRIPTS`) whose letters ``local_part``
    holds, when it holds more than one; ``()`` otherwise."""
    found: set[str] = set()
    for char in local_part:
        if not char.isalpha():
            continue
        script = unicodedata.name(char, "").split(" ", 1)[0]
        if script in LOOK_ALIKE_SCRIPTS:
            found.add(script)
    return tuple(sorted(found)) if len(found) > 1 else ()


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
    scripts = mixed_scripts(str(checked.local_part))
    if scripts:
        raise InvalidEmail(
            "The email address mixes letters of different scripts ("
            + " and ".join(name.title() for name in scripts)
            + ") before the @",
            scripts=[name.lower() for name in scripts],
        )
    return str(checked.normalized)


async def check_new_password(
    password: str,
    *,
    email: str | None = None,
    common_check: bool = True,
    min_score: int = DEFAULT_MIN_SCORE,
) -> None:
    """:func:`check_password` in a worker thread: the estimator takes up to a few tenths of a
    second of CPU, which must not be taken from the event loop."""
    await anyio.to_thread.run_sync(
        functools.partial(
            check_password, password, email=email, common_check=common_check, min_score=min_score
        )
    )


def check_password(
    password: str,
    *,
    email: str | None = None,
    common_check: bool = True,
    min_score: int = DEFAULT_MIN_SCORE,
) -> None:
    """WeakPassword unless the password is long enough, not trivially guessable and not the
    email; long passwords are fine (argon2 has no length cap). With ``common_check``, also
    unless zxcvbn scores it at least ``min_score`` (0 turns the estimate off)."""
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
    if common_check and min_score > 0:
        inputs = [] if email is None else [email, email.split("@", 1)[0]]
        estimate = zxcvbn(password[:ESTIMATED_LENGTH], user_inputs=inputs)
        score = int(estimate["score"])
        if score < min_score:
            feedback = estimate.get("feedback") or {}
            hint = str(feedback.get("warning") or "").strip()
            raise WeakPassword(
                "This password is too easy to guess"
                + (f" ({hint.rstrip('.')})" if hint else "")
                + "; use a longer one, such as a few unrelated words",
                score=score,
                min_score=min_score,
            )


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
