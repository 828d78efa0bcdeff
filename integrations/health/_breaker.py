"""A circuit breaker per (tenant, plugin): stop calling a service that keeps failing.

    closed ──(failure_threshold failures within window_seconds)──> open
    open ──(cooldown_seconds passed; checked on the next call or look)──> half_open
    half_open ──(success_threshold successes)──> closed
    half_open ──(any failure)──> open

While open every call fails fast with `CircuitOpenError`, which says when the next try is due.
Half-open admits at most `half_open_max_calls` trial calls per half-open spell. A call takes a
`Ticket` from `before_call()` and hands it back with `record_success`, `record_failure` or
`release` (abandoned, counts neither way); tickets from an earlier state are ignored, so a slow
call admitted while closed cannot close or reopen a breaker that moved on meanwhile.
Transitions go to an optional listener, after the breaker's lock is released.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from integrations.errors import ConfigError
from integrations.health._clock import Clock, SystemClock
from integrations.health._errors import CircuitOpenError

T = TypeVar("T")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
BREAKER_STATES = (CLOSED, OPEN, HALF_OPEN)


@dataclass(frozen=True)
class BreakerConfig:
    """When to open, how long to stay open, and how carefully to close again."""

    failure_threshold: int = 5
    window_seconds: float = 60.0
    cooldown_seconds: float = 30.0
    half_open_max_calls: int = 1
    success_threshold: int = 1

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "half_open_max_calls", "success_threshold"):
            if getattr(self, name) < 1:
                raise ConfigError(f"breaker {name} must be at least 1, not {getattr(self, name)}", field=name)
        for name in ("window_seconds", "cooldown_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"breaker {name} must be positive, not {getattr(self, name)}", field=name)
        if self.success_threshold > self.half_open_max_calls:
            raise ConfigError(
                f"breaker success_threshold ({self.success_threshold}) exceeds half_open_max_calls "
                f"({self.half_open_max_calls}): it could never close", field="success_threshold",
                hint="raise half_open_max_calls or lower success_threshold")


@dataclass(frozen=True)
class BreakerTransition:
    """One change of state, as told to the listener."""

    tenant: str | None
    plugin: str | None
    old: str
    new: str
    at: float          # clock.now()
    wall: datetime     # clock.wall()


@dataclass(frozen=True)
class Ticket:
    """Permission for one call, tied to the state spell that granted it."""

    generation: int
    state: str


class CircuitBreaker:
    """The breaker of one (tenant, plugin). Thread-safe; usable from sync and async code."""

    def __init__(self, config: BreakerConfig | None = None, *, clock: Clock | None = None,
                 tenant: str | None = None, plugin: str | None = None,
                 listener: Callable[[BreakerTransition], None] | None = None) -> None:
        self.config = config or BreakerConfig()
        self.clock = clock or SystemClock()
        self.tenant = tenant
        self.plugin = plugin
        self.listener = listener
        self._lock = threading.Lock()
        self._state = CLOSED
        self._generation = 0
        self._failures: deque[float] = deque()   # failure times within the window (closed state)
        self._opened_at: float | None = None
        self._next_attempt_at: float | None = None
        self._trials = 0                          # trial calls admitted in this half-open spell
        self._successes = 0                       # trial calls that succeeded in this half-open spell
        self.opens = 0                            # how many times it has opened

    # -- observation --------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """`closed`, `open` or `half_open` as of now (an expired cool-down shows as half-open)."""
        with self._lock:
            pending = self._refresh()
            state = self._state
        self._tell(pending)
        return state

    @property
    def opened_at(self) -> float | None:
        """clock.now() when the breaker last opened (None while it has not, or once closed)."""
        return self._opened_at

    @property
    def next_attempt_at(self) -> float | None:
        """clock.now() from which an open breaker lets a trial call through."""
        return self._next_attempt_at

    @property
    def recent_failures(self) -> int:
        """Failures counted in the current window (closed state)."""
        with self._lock:
            self._prune(self.clock.now())
            return len(self._failures)

    def snapshot(self) -> dict[str, object]:
        """State and timings as plain values, with times converted to wall clock for people."""
        state = self.state
        now, wall = self.clock.now(), self.clock.wall()

        def as_wall(t: float | None) -> str | None:
            return None if t is None else (wall + timedelta(seconds=t - now)).isoformat()

        return {"breaker_state": state, "breaker_opens": self.opens,
                "breaker_opened_at": as_wall(self._opened_at) if state != CLOSED else None,
                "breaker_next_attempt_at": as_wall(self._next_attempt_at) if state == OPEN else None,
                "breaker_recent_failures": self.recent_failures}

    # -- the call protocol ----------------------------------------------------------------------

    def before_call(self) -> Ticket:
        """A ticket for one call, or CircuitOpenError when the breaker fails fast."""
        with self._lock:
            pending = self._refresh()
            error = None
            if self._state == OPEN:
                error = self._open_error(half_open=False)
            elif self._state == HALF_OPEN:
                if self._trials >= self.config.half_open_max_calls:
                    error = self._open_error(half_open=True)
                else:
                    self._trials += 1
            ticket = Ticket(self._generation, self._state)
        self._tell(pending)
        if error is not None:
            raise error
        return ticket

    def record_success(self, ticket: Ticket) -> None:
        with self._lock:
            pending: list[BreakerTransition] = []
            if ticket.generation == self._generation and self._state == HALF_OPEN:
                self._successes += 1
                if self._successes >= self.config.success_threshold:
                    pending.append(self._move(CLOSED))
        self._tell(pending)

    def record_failure(self, ticket: Ticket) -> None:
        with self._lock:
            pending: list[BreakerTransition] = []
            if ticket.generation == self._generation:
                now = self.clock.now()
                if self._state == HALF_OPEN:
                    pending.append(self._move(OPEN))
                elif self._state == CLOSED:
                    self._failures.append(now)
                    self._prune(now)
                    if len(self._failures) >= self.config.failure_threshold:
                        pending.append(self._move(OPEN))
        self._tell(pending)

    def release(self, ticket: Ticket) -> None:
        """Give back a ticket whose call was abandoned (cancelled): it counts neither way."""
        with self._lock:
            if ticket.generation == self._generation and self._state == HALF_OPEN and self._trials > 0:
                self._trials -= 1

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` through the breaker: any exception is a failure."""
        ticket = self.before_call()
        try:
            result = fn()
        except Exception:
            self.record_failure(ticket)
            raise
        except BaseException:
            self.release(ticket)
            raise
        self.record_success(ticket)
        return result

    async def acall(self, fn: Callable[[], Awaitable[T]]) -> T:
        """`call` for a coroutine function."""
        ticket = self.before_call()
        try:
            result = await fn()
        except Exception:
            self.record_failure(ticket)
            raise
        except BaseException:
            self.release(ticket)
            raise
        self.record_success(ticket)
        return result

    # -- internals (called with the lock held) ---------------------------------------------------

    def _refresh(self) -> list[BreakerTransition]:
        if self._state == OPEN and self._next_attempt_at is not None and self.clock.now() >= self._next_attempt_at:
            return [self._move(HALF_OPEN)]
        return []

    def _prune(self, now: float) -> None:
        """Forget failures older than the window: it holds those at times t with now - t < window."""
        horizon = now - self.config.window_seconds
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()

    def _move(self, new: str) -> BreakerTransition:
        old, now = self._state, self.clock.now()
        self._state = new
        self._generation += 1
        self._trials = 0
        self._successes = 0
        if new == OPEN:
            self.opens += 1
            self._opened_at = now
            self._next_attempt_at = now + self.config.cooldown_seconds
            self._failures.clear()
        elif new == CLOSED:
            self._opened_at = None
            self._next_attempt_at = None
            self._failures.clear()
        return BreakerTransition(self.tenant, self.plugin, old, new, now, self.clock.wall())

    def _open_error(self, *, half_open: bool) -> CircuitOpenError:
        now = self.clock.now()
        if half_open or self._next_attempt_at is None:
            retry_in = 0.0
        else:
            retry_in = round(max(0.0, self._next_attempt_at - now), 3)
        retry_at = (self.clock.wall() + timedelta(seconds=retry_in)).isoformat()
        return CircuitOpenError(self.tenant, self.plugin, retry_in=retry_in, retry_at=retry_at, half_open=half_open)

    def _tell(self, transitions: list[BreakerTransition]) -> None:
        if self.listener is None:
            return
        for transition in transitions:
            self.listener(transition)

    def __repr__(self) -> str:
        return f"CircuitBreaker(tenant={self.tenant!r}, plugin={self.plugin!r}, state={self._state!r})"
