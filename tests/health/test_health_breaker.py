"""The circuit breaker: examples, and Property 5 as a stateful test against a reference model."""

from __future__ import annotations

import asyncio
import pickle

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, rule

from integrations.errors import ConfigError, IntegrationsError
from integrations.health import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    FakeClock,
)


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("down")


def test_opens_after_threshold_within_window_and_fails_fast(clock: FakeClock) -> None:
    seen = []
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=3, window_seconds=10, cooldown_seconds=30),
                             clock=clock, tenant="acme", plugin="github", listener=seen.append)
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state == CLOSED
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state == OPEN
    assert breaker.opened_at == clock.now()
    assert breaker.next_attempt_at == clock.now() + 30
    called = []
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: called.append(1))
    assert not called
    err = info.value
    assert isinstance(err, IntegrationsError)
    assert (err.tenant, err.plugin, err.retry_in) == ("acme", "github", 30.0)
    assert "next try in 30.0s" in str(err) and "github" in str(err) and "acme" in str(err)
    assert [(t.old, t.new) for t in seen] == [(CLOSED, OPEN)]


def test_failures_outside_the_window_do_not_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=2, window_seconds=5), clock=clock)
    with pytest.raises(Boom):
        breaker.call(fail)
    clock.advance(5)  # the first failure is now exactly one window old: forgotten
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state == CLOSED
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state == OPEN


def test_half_open_trial_then_close_or_reopen(clock: FakeClock) -> None:
    seen = []
    config = BreakerConfig(failure_threshold=1, cooldown_seconds=10, half_open_max_calls=2, success_threshold=2)
    breaker = CircuitBreaker(config, clock=clock, listener=seen.append)
    with pytest.raises(Boom):
        breaker.call(fail)
    clock.advance(10)
    assert breaker.state == HALF_OPEN
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state == HALF_OPEN
    with pytest.raises(Boom):  # any failure in half-open reopens
        breaker.call(fail)
    assert breaker.state == OPEN and breaker.opens == 2
    clock.advance(10)
    breaker.call(lambda: 1)
    breaker.call(lambda: 2)
    assert breaker.state == CLOSED
    assert [(t.old, t.new) for t in seen] == [
        (CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_half_open_limits_trial_calls_in_flight(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=1, cooldown_seconds=1, half_open_max_calls=1), clock=clock)
    with pytest.raises(Boom):
        breaker.call(fail)
    clock.advance(1)
    ticket = breaker.before_call()
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    assert info.value.half_open
    breaker.release(ticket)  # an abandoned trial frees its slot
    breaker.record_success(breaker.before_call())
    assert breaker.state == CLOSED


def test_stale_tickets_are_ignored(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=1, cooldown_seconds=1), clock=clock)
    slow = breaker.before_call()           # admitted while closed
    with pytest.raises(Boom):
        breaker.call(fail)                 # opens
    clock.advance(1)
    trial = breaker.before_call()          # half-open trial
    breaker.record_success(slow)           # the slow closed-state call must not close it
    assert breaker.state == HALF_OPEN
    breaker.record_success(trial)
    assert breaker.state == CLOSED


def test_async_call(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=1), clock=clock)

    async def broken() -> None:
        raise Boom("x")

    async def main() -> None:
        with pytest.raises(Boom):
            await breaker.acall(broken)
        with pytest.raises(CircuitOpenError):
            await breaker.acall(broken)

    asyncio.run(main())


@pytest.mark.parametrize("kwargs", [
    {"failure_threshold": 0}, {"cooldown_seconds": 0}, {"window_seconds": -1},
    {"half_open_max_calls": 1, "success_threshold": 2},
])
def test_config_is_checked(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        BreakerConfig(**kwargs)


def test_circuit_open_error_pickles(clock: FakeClock) -> None:
    err = CircuitOpenError("acme", "github", retry_in=3.0, retry_at="2024-01-01T00:00:03+00:00")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.tenant, back.plugin, back.retry_in, str(back)) == (
        CircuitOpenError, "acme", "github", 3.0, str(err))


# -- Property 5 -----------------------------------------------------------------------------------


class ReferenceBreaker:
    """The breaker as the design states it, written plainly, to check the real one against."""

    def __init__(self, config: BreakerConfig) -> None:
        self.c = config
        self.state = CLOSED
        self.gen = 0
        self.failures: list[float] = []
        self.next_attempt = 0.0
        self.trials = 0
        self.successes = 0

    def move(self, new: str, now: float) -> None:
        self.state, self.gen, self.trials, self.successes = new, self.gen + 1, 0, 0
        if new == OPEN:
            self.next_attempt = now + self.c.cooldown_seconds
        if new in (OPEN, CLOSED):
            self.failures = []

    def refresh(self, now: float) -> None:
        if self.state == OPEN and now >= self.next_attempt:
            self.move(HALF_OPEN, now)

    def admit(self, now: float) -> int | None:
        self.refresh(now)
        if self.state == OPEN:
            return None
        if self.state == HALF_OPEN:
            if self.trials >= self.c.half_open_max_calls:
                return None
            self.trials += 1
        return self.gen

    def finish(self, gen: int, ok: bool | None, now: float) -> None:
        if gen != self.gen:
            return
        if ok is None:  # released
            if self.state == HALF_OPEN:
                self.trials -= 1
        elif ok:
            if self.state == HALF_OPEN:
                self.successes += 1
                if self.successes >= self.c.success_threshold:
                    self.move(CLOSED, now)
        elif self.state == HALF_OPEN:
            self.move(OPEN, now)
        else:
            self.failures = [t for t in self.failures if now - t < self.c.window_seconds] + [now]
            if len(self.failures) >= self.c.failure_threshold:
                self.move(OPEN, now)


@st.composite
def breaker_configs(draw: st.DrawFn) -> BreakerConfig:
    half_open_max = draw(st.integers(1, 3))
    return BreakerConfig(
        failure_threshold=draw(st.integers(1, 4)),
        window_seconds=draw(st.sampled_from([1.0, 5.0, 30.0])),
        cooldown_seconds=draw(st.sampled_from([1.0, 2.5, 10.0])),
        half_open_max_calls=half_open_max,
        success_threshold=draw(st.integers(1, half_open_max)),
    )


class BreakerMachine(RuleBasedStateMachine):
    """Feature: integrations, Property 5: for any sequence of successes, failures, abandoned calls and
    waits, the circuit breaker never lets a call through while open, always allows a trial call once
    the cool-down has passed, closes after `success_threshold` half-open successes, reopens on any
    half-open failure, and never admits more than `half_open_max_calls` trial calls per half-open spell."""

    in_flight = Bundle("in_flight")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.transitions: list = []

    @initialize(config=breaker_configs())
    def build(self, config: BreakerConfig) -> None:
        self.config = config
        self.breaker = CircuitBreaker(config, clock=self.clock, tenant="t", plugin="p",
                                      listener=self.transitions.append)
        self.model = ReferenceBreaker(config)
        self.half_open_admitted: dict[int, int] = {}  # model generation -> trial calls holding a slot

    def _note_admission(self, gen: int) -> None:
        if self.model.state == HALF_OPEN:
            self.half_open_admitted[gen] = self.half_open_admitted.get(gen, 0) + 1
            assert self.half_open_admitted[gen] <= self.config.half_open_max_calls

    @rule(seconds=st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.5, 7.0, 30.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(ok=st.booleans())
    def call(self, ok: bool) -> None:
        was_open = self.breaker.state == OPEN
        now = self.clock.now()
        gen = self.model.admit(now)
        ran = []

        def work() -> str:
            ran.append(1)
            if not ok:
                raise Boom("x")
            return "ok"

        try:
            self.breaker.call(work)
        except CircuitOpenError:
            assert gen is None, "the breaker refused a call the design admits"
        except Boom:
            assert gen is not None
        else:
            assert gen is not None
        if was_open:
            assert not ran, "a call went through an open breaker"
        if gen is not None:
            self._note_admission(gen)
            self.model.finish(gen, ok, self.clock.now())
        assert bool(ran) == (gen is not None)

    @rule(target=in_flight)
    def start(self):
        gen = self.model.admit(self.clock.now())
        try:
            ticket = self.breaker.before_call()
        except CircuitOpenError:
            assert gen is None
            return multiple()
        assert gen is not None
        self._note_admission(gen)
        return (ticket, gen)

    @rule(call=consumes(in_flight), outcome=st.sampled_from([True, False, None]))
    def finish(self, call, outcome) -> None:
        ticket, gen = call
        if outcome is True:
            self.breaker.record_success(ticket)
        elif outcome is False:
            self.breaker.record_failure(ticket)
        else:
            self.breaker.release(ticket)  # an abandoned trial gives its slot back
            if gen in self.half_open_admitted and gen == self.model.gen:
                self.half_open_admitted[gen] -= 1
        self.model.finish(gen, outcome, self.clock.now())

    @rule()
    def trial_after_cooldown(self) -> None:
        """Once open, waiting out the cool-down always earns a trial call, and successes close it."""
        if self.breaker.state != OPEN:
            return
        self.clock.advance(self.breaker.next_attempt_at - self.clock.now())
        assert self.breaker.state == HALF_OPEN
        self.model.refresh(self.clock.now())
        for _ in range(self.config.success_threshold):
            gen = self.model.admit(self.clock.now())
            assert gen is not None
            self._note_admission(gen)
            assert self.breaker.call(lambda: "trial") == "trial"
            self.model.finish(gen, True, self.clock.now())
        assert self.breaker.state == CLOSED

    @invariant()
    def agrees_with_the_reference(self) -> None:
        if not hasattr(self, "model"):
            return
        self.model.refresh(self.clock.now())
        assert self.breaker.state == self.model.state
        if self.model.state == OPEN:
            assert self.breaker.next_attempt_at == self.model.next_attempt > self.clock.now()

    @invariant()
    def transitions_follow_the_diagram(self) -> None:
        allowed = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (HALF_OPEN, CLOSED)}
        assert all((t.old, t.new) in allowed for t in self.transitions)
        for before, after in zip(self.transitions, self.transitions[1:]):
            assert before.new == after.old


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
test_property_5_breaker_state_machine = BreakerMachine.TestCase
test_property_5_breaker_state_machine.__doc__ = BreakerMachine.__doc__
