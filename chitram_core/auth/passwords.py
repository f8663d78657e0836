"""argon2id hashing in worker threads, under a limiter of its own.

Each argon2id hash takes 64 MiB for its duration. Limited only by anyio's shared 40-thread pool,
30 logins at once grew the server by about 1 GB; here at most ``concurrency`` hashes (default:
the CPU count, more would only queue on the cores) run at once, in threads that do not take
tokens from the shared pool. A caller that cannot start within ``wait_timeout`` gets 503 with
``Retry-After`` rather than a queue without bound.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from chitram_core.errors import ServiceUnavailable

_DUMMY_PASSWORD = "chitram-dummy-password-for-constant-time"

T = TypeVar("T")


class HashLimiter:
    """At most ``concurrency`` password hashes at once; 503 after ``wait_timeout`` seconds."""

    def __init__(self, concurrency: int | None = None, wait_timeout: float = 5.0) -> None:
        self.concurrency = concurrency or os.cpu_count() or 1
        self.wait_timeout = wait_timeout
        self._admission: anyio.Semaphore | None = None
        self._threads: anyio.CapacityLimiter | None = None

    @property
    def in_use(self) -> int:
        return 0 if self._admission is None else self.concurrency - self._admission.value

    async def run(self, func: Callable[..., T], *args: object) -> T:
        # Made on first use, inside the event loop that will use them.
        if self._admission is None or self._threads is None:
            self._admission = anyio.Semaphore(self.concurrency)
            self._threads = anyio.CapacityLimiter(self.concurrency)
        admission, threads = self._admission, self._threads
        with anyio.move_on_after(self.wait_timeout) as scope:
            await admission.acquire()
        if scope.cancelled_caught:
            raise ServiceUnavailable(
                "Too many sign-ins at once; try again shortly",
                retry_after=max(1, math.ceil(self.wait_timeout / 2)),
            )
        try:
            return await anyio.to_thread.run_sync(func, *args, limiter=threads)
        finally:
            admission.release()


class Passwords:
    """Hash and verify; unknown users are checked against a dummy hash to hide their absence."""

    def __init__(
        self, hasher: PasswordHasher | None = None, *, limiter: HashLimiter | None = None
    ) -> None:
        self.hasher = hasher or PasswordHasher()
        self.limiter = limiter or HashLimiter()
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        result: str = await self.limiter.run(self.hasher.hash, password)
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

        result: bool = await self.limiter.run(verify)
        return result


def hasher_for(profile: str) -> PasswordHasher:
    """The hasher for ``CHITRAM_PASSWORD_HASH_PROFILE``: argon2-cffi's defaults, or (``fast``,
    refused in production) minimal costs so a test suite does not spend its time hashing."""
    if profile == "fast":
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()
