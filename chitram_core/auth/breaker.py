"""A circuit breaker per provider: stop calling a provider that keeps being unavailable.

closed → (``threshold`` consecutive unavailability failures) → open → (``cooldown`` seconds) →
half-open: exactly one trial call goes through; its success closes the circuit, its failure opens
it again. A definite answer (even "wrong password") proves the provider is up and counts as a
success. The clock is injectable so tests control time.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

from chitram_core.observe import Observer

log = logging.getLogger(__name__)


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    def __init__(
        self,
        name: str,
        *,
        threshold: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        observer: Observer | None = None,
    ) -> None:
        self.name = name
        self.observer = observer if observer is not None else Observer()
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def state(self) -> State:
        """The state as of now (an open circuit past its cool-down reads as half-open)."""
        if self._state is State.OPEN and self._clock() >= self._opened_at + self.cooldown:
            return State.HALF_OPEN
        return self._state

    @property
    def failures(self) -> int:
        return self._failures

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a trial call through (0 when it would now)."""
        if self._state is not State.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def allow(self) -> bool:
        """May a call go to the provider now? In half-open, only the one trial may."""
        if self.state is State.HALF_OPEN and self._state is State.OPEN:
            self._move(State.HALF_OPEN)
        if self._state is State.CLOSED:
            return True
        if self._state is State.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._trial_running = False
        if self._state is not State.CLOSED:
            self._move(State.CLOSED)

    def record_failure(self) -> None:
        self._trial_running = False
        self._failures += 1
        if self._state is State.HALF_OPEN or (
            self._state is State.CLOSED and self._failures >= self.threshold
        ):
            self._opened_at = self._clock()
            self._move(State.OPEN)

    def release(self) -> None:
        """The call ended without telling anything about availability (cancelled, a bug)."""
        self._trial_running = False

    def _move(self, state: State) -> None:
        log.log(
            logging.WARNING if state is State.OPEN else logging.INFO,
            "auth provider %r circuit %s -> %s (consecutive failures: %d)",
            self.name,
            self._state.value,
            state.value,
            self._failures,
        )
        self._state = state
        self.observer.auth_provider(self.name, state.value)
