"""Rate limits, client addresses and upload back-pressure (docs/http-api.md#limits)."""

from __future__ import annotations

from chitram_core.cache.base import RateDecision
from chitram_core.limits.addresses import client_address, rate_limit_identity
from chitram_core.limits.rate import RateLimiter
from chitram_core.limits.slots import UploadSlots

__all__ = ["RateDecision", "RateLimiter", "UploadSlots", "client_address", "rate_limit_identity"]
