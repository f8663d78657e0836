"""The circuit breaker and the chain, specified by a Hypothesis state machine and a few examples.

The model below restates the rules independently of the implementation: closed → open after N
consecutive unavailability failures → half-open after the cool-down, one trial call; a definite
answer is proof of life; only unavailability moves a request on to the next provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chitram_core.auth.breaker import Breaker, State
from chitram_core.auth.chain import AuthChain
from chitram_core.errors import InvalidCredentials, ProviderUnavailable
from chitram_core.models import Check, Principal, Session, User

THRESHOLD = 3
COOLDOWN = 30.0
NAMES = ("first", "second", "third")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def a_session(provider: str) -> Session:
    user = User(
        id=provider, email=f"{provider}@example.com", is_active=True, created_at=datetime.now(UTC)
    )
    return Session(user=user, access_token=provider, refresh_token=provider, expires_in=60)


@dataclass
class Scripted:
    """A provider whose answer the test decides: up, down (unavailable) or definite (refusal)."""

    name: str
    mode: str = "up"
    timeout: float | None = None
    calls: list[float] = field(default_factory=list)
    clock: Clock | None = None
    gate: anyio.Event | None = None

    async def _answer(self) -> Session:
        self.calls.append(self.clock() if self.clock else 0.0)
        if self.gate is not None:
            await self.gate.wait()
        if self.mode == "down":
            raise ProviderUnavailable(f"{self.name} is down")
        if self.mode == "definite":
            raise InvalidCredentials()
        return a_session(self.name)

    async def start(self, database: object) -> None: ...
    async def close(self) -> None: ...

    async def register(self, email: str, password: str) -> Session:
        return await self._answer()

    async def login(self, email: str, password: str) -> Session:
        return await self._answer()

    async def refresh(self, refresh_token: str) -> Session:
        return await self._answer()

    async def authenticate(self, token: str) -> Principal:
        raise NotImplementedError

    async def vouch(self, token: str) -> Principal | None:
        return None

    async def logout(
        self, principal: Principal, refresh_token: str | None = None, **_: object
    ) -> None:
        return None

    async def request_password_reset(self, email: str) -> None:
        await self._answer()

    def issued(self, token: str) -> bool:
        return False

    async def health(self) -> Check:
        return Check(status="healthy")


@dataclass
class ModelBreaker:
    open_at: float | None = None  # set while open (or half-open: open and past the cool-down)
    failures: int = 0

    def allows(self, now: float) -> bool:
        return self.open_at is None or now >= self.open_at + COOLDOWN

    def succeed(self) -> None:
        self.open_at, self.failures = None, 0

    def fail(self, now: float) -> None:
        self.failures += 1
        if self.open_at is not None or self.failures >= THRESHOLD:
            self.open_at = now


class ChainMachine(RuleBasedStateMachine):
    @initialize(count=st.integers(min_value=1, max_value=3))
    def build(self, count: int) -> None:
        self.clock = Clock()
        self.providers = [Scripted(name, clock=self.clock) for name in NAMES[:count]]
        self.chain = AuthChain(
            self.providers, threshold=THRESHOLD, cooldown=COOLDOWN, clock=self.clock
        )
        self.model = {p.name: ModelBreaker() for p in self.providers}

    @rule(index=st.integers(0, 2), mode=st.sampled_from(["up", "down", "definite"]))
    def set_mode(self, index: int, mode: str) -> None:
        self.providers[index % len(self.providers)].mode = mode

    @rule(seconds=st.sampled_from([0.5, 1.0, 10.0, COOLDOWN - 0.001, COOLDOWN, 45.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def login(self) -> None:
        now = self.clock.now
        expected_calls: list[str] = []
        expected = "unavailable"
        for provider in self.providers:
            breaker = self.model[provider.name]
            if not breaker.allows(now):
                continue  # an open circuit is skipped without a call
            expected_calls.append(provider.name)
            if provider.mode == "down":
                breaker.fail(now)
                continue
            breaker.succeed()
            expected = "session" if provider.mode == "up" else "refused"
            break  # a definite answer ends the chain

        before = {p.name: len(p.calls) for p in self.providers}
        outcome = anyio.run(self._login)
        called = [p.name for p in self.providers if len(p.calls) > before[p.name]]

        assert called == expected_calls
        assert outcome == expected
        if outcome == "refused":
            refusing = called[-1]
            later = [p.name for p in self.providers][
                [p.name for p in self.providers].index(refusing) + 1 :
            ]
            assert not any(len(p.calls) > before[p.name] for p in self.providers if p.name in later)

    @rule()
    def recover_and_wait(self) -> None:
        """Availability returns: every provider back up, the cool-down over, the next call works."""
        for provider in self.providers:
            provider.mode = "up"
        self.clock.now += COOLDOWN
        assert anyio.run(self._login) == "session"
        first = self.providers[0].name
        self.model[first].succeed()

    async def _login(self) -> str:
        try:
            await self.chain.login("user@example.com", "password123")
        except ProviderUnavailable:
            return "unavailable"
        except InvalidCredentials:
            return "refused"
        return "session"

    @invariant()
    def breaker_state_matches_the_model(self) -> None:
        for provider in self.providers:
            model = self.model[provider.name]
            state = self.chain.breakers[provider.name].state
            if model.open_at is None:
                assert state is State.CLOSED
            elif model.allows(self.clock.now):
                assert state is State.HALF_OPEN
            else:
                assert state is State.OPEN


ChainMachine.TestCase.settings = hypothesis_settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestChainStateMachine = ChainMachine.TestCase


# Examples -------------------------------------------------------------------------------------


def test_the_circuit_opens_after_the_threshold_of_consecutive_failures() -> None:
    clock = Clock()
    breaker = Breaker("p", threshold=3, cooldown=30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is State.CLOSED
    breaker.record_failure()
    assert breaker.state is State.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == 30


def test_a_success_resets_the_failure_count() -> None:
    breaker = Breaker("p", threshold=2, cooldown=30, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is State.CLOSED


def test_half_open_lets_exactly_one_trial_through_and_its_failure_reopens() -> None:
    clock = Clock()
    breaker = Breaker("p", threshold=1, cooldown=30, clock=clock)
    breaker.record_failure()
    clock.now += 30
    assert breaker.state is State.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_failure()
    assert breaker.state is State.OPEN
    assert not breaker.allow()
    clock.now += 30
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is State.CLOSED


def test_breaker_transitions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    breaker = Breaker("supabase", threshold=1, cooldown=30, clock=Clock())
    with caplog.at_level("INFO", logger="chitram_core.auth.breaker"):
        breaker.record_failure()
    assert "supabase" in caplog.text and "closed -> open" in caplog.text


@pytest.mark.anyio
async def test_concurrent_calls_in_half_open_send_only_one_trial() -> None:
    clock = Clock()
    provider = Scripted("only", clock=clock, mode="down")
    chain = AuthChain([provider], threshold=1, cooldown=30, clock=clock)
    with pytest.raises(ProviderUnavailable):
        await chain.login("a@example.com", "password123")
    clock.now += 30
    provider.mode, provider.gate = "up", anyio.Event()
    results: list[str] = []

    async def attempt() -> None:
        try:
            await chain.login("a@example.com", "password123")
            results.append("session")
        except ProviderUnavailable:
            results.append("unavailable")

    async with anyio.create_task_group() as tg:
        tg.start_soon(attempt)
        tg.start_soon(attempt)
        await anyio.sleep(0.05)
        provider.gate.set()
    assert sorted(results) == ["session", "unavailable"]
    assert len(provider.calls) == 2  # the first failure, then the single trial


@pytest.mark.anyio
async def test_a_call_that_times_out_counts_as_unavailable() -> None:
    provider = Scripted("slow", gate=anyio.Event(), timeout=0.05)
    chain = AuthChain([provider], threshold=1, cooldown=30)
    with pytest.raises(ProviderUnavailable):
        await chain.login("a@example.com", "password123")
    assert chain.breakers["slow"].state is State.OPEN
