"""What the variant tests share (a module, not conftest, so imports never pick another one)."""

from __future__ import annotations

KEYS = ("current-variant-key-0123456789", "older-variant-key-9876543210")
"""CHITRAM_VARIANT_KEYS of the test apps: the first signs, the second is an older key."""
