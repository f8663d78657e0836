"""The rate limiter: a sliding window per scope and identity, counted by the cache backend.

The backend's ``hit`` is atomic (a Lua script in Redis, a lock in memory), so the limit is
exact under any concurrency, across every process sharing the backend.
"""

from __future__ import annotations

import hashlib
import logging

from chitram_core.cache.base import RateCounter, RateDecision
from chitram_core.errors import RateLimitExceeded
from chitram_core.settings import RateLimit

log = logging.getLogger(__name__)


class RateLimiter:
    """Counts events per ``(scope, identity)``; ``fail_open`` decides when the backend fails.

    Identities (emails, addresses, user ids) are hashed before they become keys, so the shared
    cache never holds an email address.
    """

    def __init__(self, cache: RateCounter, *, fail_open: bool = True) -> None:
        self.cache = cache
        self.fail_open = fail_open

    @property
    def status(self) -> str:
        return self.cache.status

    @staticmethod
    def key(scope: str, identity: str) -> str:
        digest = hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()
        return f"{scope}:{digest}"

    async def hit(self, scope: str, identity: str, rule: RateLimit) -> RateDecision:
        """Count one event; never raises (a failing backend gives the fail-open default)."""
        try:
            return await self.cache.hit(self.key(scope, identity), rule.limit, rule.period)
        except Exception as exc:  # a plugin outage must not fail the request
            log.warning(
                "Rate limit backend %s failed (%s: %s); %s",
                self.cache.name,
                type(exc).__name__,
                exc,
                "allowing" if self.fail_open else "refusing",
            )
            return RateDecision.fallback(rule.limit, rule.period, allow=self.fail_open)

    async def check(self, scope: str, identity: str, rule: RateLimit) -> RateDecision:
        """Count one event; :class:`RateLimitExceeded` when it is over the limit."""
        decision = await self.hit(scope, identity, rule)
        if not decision.allowed:
            raise RateLimitExceeded(
                f"Rate limit exceeded: {rule.limit} per {rule.period} seconds; "
                f"retry in {decision.retry_after} s",
                limit=rule.limit,
                retry_after=decision.retry_after,
            )
        return decision
