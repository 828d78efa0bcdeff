"""The guard around every call a plugin makes to its service: breaker, rate limit, retry, figures.

    guard.call(fn, *args)            sync
    await guard.acall(coro_fn, *args) async

Each attempt asks the breaker first (an open breaker fails fast with `CircuitOpenError`, which is
never retried: no retry storm against a service that is down), then waits for the rate limiter,
then calls. A returned `httpx.Response` with an error status counts as that error. The outcome
is classified: RETRYABLE failures count against the breaker and are retried under the policy,
and end as `RetriesExhaustedError`; AUTH raises `NeedsCredentialsError` at once; PERMANENT raises
`RequestFailedError` at once (an `IntegrationsError` from the call itself passes through as it is).
AUTH and PERMANENT answers prove the service reachable, so they count as breaker successes.
Every attempt, whatever its end, goes into the health figures with its latency.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from integrations.errors import IntegrationsError
from integrations.health._breaker import CircuitBreaker, Ticket
from integrations.health._classify import ErrorClass, classify, status_of
from integrations.health._clock import Clock, SystemClock
from integrations.health._errors import (
    CircuitOpenError,
    NeedsCredentialsError,
    RequestFailedError,
    RetriesExhaustedError,
)
from integrations.health._figures import HealthFigures
from integrations.health._ratelimit import RateLimiter
from integrations.health._retry import BackoffWithHint, RetryPolicy, StopAtDeadline, should_retry

T = TypeVar("T")


class Guard:
    """Wraps calls of one (tenant, plugin). Get one from `HealthMonitor.guard()`, or build it alone."""

    def __init__(self, tenant: str, plugin: str, *, policy: RetryPolicy | None = None, clock: Clock | None = None,
                 breaker: CircuitBreaker | None = None, limiter: RateLimiter | None = None,
                 figures: HealthFigures | None = None) -> None:
        self.tenant = tenant
        self.plugin = plugin
        self.policy = policy or RetryPolicy()
        self.clock = clock or SystemClock()
        self.breaker = breaker
        self.limiter = limiter
        self.figures = figures

    # -- public ----------------------------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn(*args, **kwargs)` under the guard and return its result."""
        start = self.clock.now()
        retrying = Retrying(sleep=self.clock.sleep, **self._tenacity_options(start))
        return retrying(self._attempt, fn, args, kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await `fn(*args, **kwargs)` under the guard and return its result."""
        start = self.clock.now()
        retrying = AsyncRetrying(sleep=self.clock.asleep, **self._tenacity_options(start))
        return await retrying(self._aattempt, fn, args, kwargs)

    # -- one attempt -------------------------------------------------------------------------------

    def _attempt(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        ticket = self._admit()
        try:
            if self.limiter is not None:
                self.limiter.acquire()
        except BaseException:
            self._release(ticket)
            raise
        started = self.clock.now()
        try:
            result = fn(*args, **kwargs)
            _raise_for_error_response(result)
        except Exception as exc:
            failure = self._failed(ticket, started, exc)
            if failure is exc:
                raise
            raise failure from exc
        except BaseException:
            self._release(ticket)
            raise
        self._succeeded(ticket, started)
        return result

    async def _aattempt(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        ticket = self._admit()
        try:
            if self.limiter is not None:
                await self.limiter.aacquire()
        except BaseException:
            self._release(ticket)
            raise
        started = self.clock.now()
        try:
            result = await fn(*args, **kwargs)
            _raise_for_error_response(result)
        except Exception as exc:
            failure = self._failed(ticket, started, exc)
            if failure is exc:
                raise
            raise failure from exc
        except BaseException:
            self._release(ticket)
            raise
        self._succeeded(ticket, started)
        return result

    def _admit(self) -> Ticket | None:
        if self.breaker is None:
            return None
        try:
            return self.breaker.before_call()
        except CircuitOpenError:
            if self.figures is not None:
                self.figures.record_rejected()
            raise

    def _release(self, ticket: Ticket | None) -> None:
        if ticket is not None and self.breaker is not None:
            self.breaker.release(ticket)

    def _succeeded(self, ticket: Ticket | None, started: float) -> None:
        if ticket is not None and self.breaker is not None:
            self.breaker.record_success(ticket)
        if self.figures is not None:
            self.figures.record_success(self.clock.now() - started, self.clock.wall())

    def _failed(self, ticket: Ticket | None, started: float, exc: Exception) -> Exception:
        """Record a failed attempt; return what to raise (the original when it may be retried)."""
        error_class = classify(exc)
        if ticket is not None and self.breaker is not None:
            if error_class is ErrorClass.RETRYABLE:
                self.breaker.record_failure(ticket)
            else:
                self.breaker.record_success(ticket)  # the service answered: it is up
        if self.figures is not None:
            self.figures.record_failure(self.clock.now() - started, self.clock.wall(), exc, error_class)
        if error_class is ErrorClass.AUTH:
            if isinstance(exc, NeedsCredentialsError):
                return exc
            return NeedsCredentialsError(self.tenant, self.plugin, cause=exc, status=status_of(exc))
        if error_class is ErrorClass.PERMANENT and not isinstance(exc, IntegrationsError):
            return RequestFailedError(self.tenant, self.plugin, cause=exc, status=status_of(exc))
        return exc

    # -- tenacity wiring ---------------------------------------------------------------------------

    def _tenacity_options(self, start: float) -> dict[str, Any]:
        def give_up(retry_state: RetryCallState) -> Any:
            outcome = retry_state.outcome
            cause = outcome.exception() if outcome is not None else None
            raise RetriesExhaustedError(
                self.tenant, self.plugin, attempts=retry_state.attempt_number, cause=cause,
                elapsed=self.clock.now() - start, status=status_of(cause) if cause is not None else None,
            ) from cause

        return {
            "stop": stop_after_attempt(self.policy.max_attempts)
                    | StopAtDeadline(self.clock, start, self.policy.deadline_seconds),
            "wait": BackoffWithHint(self.policy, self.clock),
            "retry": retry_if_exception(should_retry),
            "retry_error_callback": give_up,
            "reraise": True,
        }

    def __repr__(self) -> str:
        return f"Guard(tenant={self.tenant!r}, plugin={self.plugin!r}, policy={self.policy!r})"


def _raise_for_error_response(result: Any) -> None:
    """A returned error response is a failure like a raised one."""
    if isinstance(result, httpx.Response) and result.is_error:
        try:
            request = result.request
        except RuntimeError:
            request = None
        raise httpx.HTTPStatusError(f"HTTP {result.status_code} {result.reason_phrase}", request=request,  # type: ignore[arg-type]
                                    response=result)
