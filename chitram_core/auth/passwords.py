"""argon2id hashing, always in a worker thread: hashing must never block the event loop."""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_DUMMY_PASSWORD = "chitram-dummy-password-for-constant-time"


class Passwords:
    """Hash and verify; unknown users are checked against a dummy hash to hide their absence."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        result: str = await anyio.to_thread.run_sync(self.hasher.hash, password)
        return result

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing hash costs the same time as a wrong one."""
        if password_hash is None:
            await self._verify(await self.dummy_hash(), password)
            return False
        return await self._verify(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return bool(self.hasher.check_needs_rehash(password_hash))
        except InvalidHashError:
            return True

    async def dummy_hash(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(_DUMMY_PASSWORD)
        return self._dummy_hash

    async def _verify(self, password_hash: str, password: str) -> bool:
        def verify() -> bool:
            try:
                return bool(self.hasher.verify(password_hash, password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        result: bool = await anyio.to_thread.run_sync(verify)
        return result


def hasher_for(profile: str) -> PasswordHasher:
    """The hasher for ``CHITRAM_PASSWORD_HASH_PROFILE``: argon2-cffi's defaults, or (``fast``,
    refused in production) minimal costs so a test suite does not spend its time hashing."""
    if profile == "fast":
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()
