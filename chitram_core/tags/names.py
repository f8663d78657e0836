"""Tag names: trimmed, lower-cased, 2..50 characters of letters, digits, spaces and hyphens."""

from __future__ import annotations

import re

from chitram_core.errors import ValidationError

MIN_LENGTH = 2
MAX_LENGTH = 50
MAX_CATEGORY = 20


def _allowed(name: str) -> bool:
    return all(ch.isalnum() or ch in " -" for ch in name)


def normalize(raw: object, *, field: str = "tag") -> str:
    """The stored form of a tag name; 422 ``VALIDATION_ERROR`` saying what is wrong."""
    if not isinstance(raw, str):
        raise ValidationError(f"The field '{field}' must be a string", field=field)
    name = raw.strip().lower()
    if not MIN_LENGTH <= len(name) <= MAX_LENGTH:
        raise ValidationError(
            f"A tag name has {MIN_LENGTH} to {MAX_LENGTH} characters", field=field
        )
    if not _allowed(name):
        raise ValidationError(
            "A tag name can only contain letters, digits, spaces and hyphens", field=field
        )
    return name


def normalize_category(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValidationError("The field 'category' must be a string or null", field="category")
    category = raw.strip().lower()
    if len(category) > MAX_CATEGORY:
        raise ValidationError(f"A category has at most {MAX_CATEGORY} characters", field="category")
    if not _allowed(category):
        raise ValidationError(
            "A category can only contain letters, digits, spaces and hyphens", field="category"
        )
    return category or None


def clean_suggestion(raw: str) -> str | None:
    """A tagger's free-form name in stored form, or None when nothing usable is left: quotes,
    dots and other punctuation go, runs of spaces become one."""
    text = re.sub(r"[_/]+", " ", raw.strip().lower())
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -")
    text = re.sub(r"\s+", " ", text).strip(" -")
    if not MIN_LENGTH <= len(text) <= MAX_LENGTH:
        return None
    return text


def search_prefix(raw: str) -> str | None:
    """A ``q`` as a tag-name prefix, or None when no tag name could start with it."""
    text = raw.strip().lower()
    if not text or len(text) > MAX_LENGTH or not _allowed(text):
        return None
    return text
