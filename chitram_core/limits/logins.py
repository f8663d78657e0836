"""Sign-in limits that nobody else's wrong passwords can turn against a user.

A limit per email alone is a lockout switch: ten wrong passwords for someone's email, from
anywhere, and the owner's right password is refused too. So sign-ins are counted per client
address (every email) and per (email, client address); a client's own attempts are all that
ever stop it.

Above those, a guard against guessing one account's password from many addresses: the failures
for an email are counted across all clients, and when they pass ``guard`` (default 20 per 15
minutes) the email is *under attack* for one period. While it is, a client that has itself
failed :data:`FAILURES_UNDER_ATTACK` times for that email is refused until the period ends; a
client with fewer failures of its own (the owner, typing the right password) is not. A
distributed guesser gets a few tries per address per period instead of ten a minute, and the
owner is never locked out (docs/decisions.md).

Counters live in the rate-limit backend, keyed by hashes: the shared cache never holds an email.
"""

from __future__ import annotations

import contextlib

from chitram_core.cache.base import KeyValueCache
from chitram_core.errors import RateLimitExceeded
from chitram_core.limits.rate import RateLimiter
from chitram_core.settings import RateLimit

FAILURES_UNDER_ATTACK = 3
"""Failures of its own for an email under attack after which a client is refused for a period."""

_FLAG = b"1"


class LoginGuard:
    """Failure bookkeeping for one email across clients; see the module docstring."""

    def __init__(self, limiter: RateLimiter, flags: KeyValueCache, guard: RateLimit | None) -> None:
        self.limiter = limiter
        self.flags = flags
        self.guard = guard

    @staticmethod
    def pair(email_key: str, client: str) -> str:
        return f"{email_key}\n{client}"

    async def check(self, email_key: str, client: str) -> None:
        """:class:`RateLimitExceeded` if the email is under attack and this client is one of
        those failing at it; counts nothing."""
        guard = self.guard
        if guard is None:
            return
        if not await self._flagged("login:attacked", email_key):
            return
        if await self._flagged("login:blocked", self.pair(email_key, client)):
            raise RateLimitExceeded(
                "Too many failed sign-ins for this account from your address; "
                f"try again in {guard.period} s",
                limit=FAILURES_UNDER_ATTACK,
                retry_after=guard.period,
            )

    async def failed(self, email_key: str, client: str) -> None:
        """Count one wrong password for ``email_key`` from ``client``."""
        guard = self.guard
        if guard is None:
            return
        pair = self.pair(email_key, client)
        own = await self.limiter.hit(
            "login:failed-here", pair, RateLimit(FAILURES_UNDER_ATTACK, guard.period)
        )
        if not own.allowed or own.remaining <= 0:
            await self._flag("login:blocked", pair, guard.period)
        everyone = await self.limiter.hit("login:failed", email_key, guard)
        if not everyone.allowed or everyone.remaining <= 0:
            await self._flag("login:attacked", email_key, guard.period)

    async def _flagged(self, scope: str, identity: str) -> bool:
        try:
            return await self.flags.get(RateLimiter.key(scope, identity)) is not None
        except Exception:  # a failing backend answers as the rate limiter does: fail open
            return False

    async def _flag(self, scope: str, identity: str, ttl: float) -> None:
        # Best effort, as every rate-limit write: a failing backend must not fail the sign-in.
        with contextlib.suppress(Exception):
            await self.flags.set(RateLimiter.key(scope, identity), _FLAG, ttl)
