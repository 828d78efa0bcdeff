"""The retry policy: exponential back-off with full jitter, bounded by attempts and a deadline.

Built on tenacity. The wait after attempt n (1-based) is drawn uniformly from
[0, min(cap_seconds, base_seconds * 2**(n-1))] (tenacity's `wait_random_exponential`, the "full
jitter" of the AWS architecture blog), raised to the server's own hint (`Retry-After`, or a
rate-limit reset) when it gave one. The deadline is measured on the monitor's clock: a retry
whose sleep would end past it is not made, and the work is given up as exhausted.

`dead_letter_item()` shapes a given-up request the way `EventStore.add_dead_letters(...,
kind="fetch")` takes it, so the runner can keep it for `integrations dlq replay`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_random_exponential

from integrations.errors import ConfigError, IntegrationsError
from integrations.health._classify import ErrorClass, classify, redact, retry_after_seconds, safe_error_message
from integrations.health._clock import Clock


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a RETRYABLE failure."""

    max_attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    deadline_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"retry max_attempts must be at least 1, not {self.max_attempts}", field="max_attempts")
        for name in ("base_seconds", "cap_seconds", "deadline_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"retry {name} must be positive, not {getattr(self, name)}", field=name)

    def backoff_cap(self, attempt: int) -> float:
        """The upper bound of the jittered wait after attempt `attempt` (1-based)."""
        return min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))


class BackoffWithHint(wait_base):
    """Full-jitter exponential back-off, never shorter than the server's Retry-After/reset hint."""

    def __init__(self, policy: RetryPolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock
        self._jitter = wait_random_exponential(multiplier=policy.base_seconds, max=policy.cap_seconds)

    def __call__(self, retry_state: RetryCallState) -> float:
        jittered = self._jitter(retry_state)
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None and outcome.failed else None
        hint = retry_after_seconds(failure, self.clock) if failure is not None else None
        return max(jittered, hint or 0.0)


class StopAtDeadline(stop_base):
    """Stop when the next sleep would end past `deadline_seconds` after `start` (clock seconds)."""

    def __init__(self, clock: Clock, start: float, deadline_seconds: float) -> None:
        self.clock = clock
        self.start = start
        self.deadline_seconds = deadline_seconds

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock.now() - self.start + retry_state.upcoming_sleep > self.deadline_seconds


def should_retry(exc: BaseException) -> bool:
    """Retry only RETRYABLE failures, and never our own verdicts (an open breaker means: stop now)."""
    from integrations.health._errors import CircuitOpenError, RetriesExhaustedError

    if isinstance(exc, (CircuitOpenError, RetriesExhaustedError)):
        return False
    return isinstance(exc, Exception) and classify(exc) is ErrorClass.RETRYABLE


_SECRET_KEYS = ("authorization", "token", "secret", "password", "passwd", "api_key", "apikey", "credential",
                "private_key", "signature", "cookie", "x-amz-security-token")


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): ("[redacted]" if any(s in str(k).lower() for s in _SECRET_KEYS) else _scrub(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def dead_letter_item(request_description: Mapping[str, Any], error: BaseException) -> dict[str, Any]:
    """The item `EventStore.add_dead_letters(tenant, plugin, source, [item], kind="fetch")` takes.

    `record` is the request as described by the caller (what replay re-issues), with secret-looking
    keys and URL query strings redacted; `reason` is the safe message of the error.
    """
    item: dict[str, Any] = {"record": _scrub(dict(request_description)), "reason": safe_error_message(error),
                            "field": None}
    if isinstance(error, IntegrationsError):
        for name in ("field", "expression", "record_index"):
            if getattr(error, name, None) is not None:
                item[name] = getattr(error, name)
    return item
