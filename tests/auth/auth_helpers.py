"""Constants and helpers shared by the auth tests (importable; conftest modules are not)."""

from __future__ import annotations

from argon2 import PasswordHasher

JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"
PASSWORD = "correct horse battery staple"


def fast_hasher() -> PasswordHasher:
    """argon2id with tiny costs: the tests check behaviour, not hashing strength."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
