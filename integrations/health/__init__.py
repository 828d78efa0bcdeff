"""The health monitor: circuit breakers, retry with back-off, error classes, rate limits, figures.

    monitor = HealthMonitor(rate_limits={"github": {"requests_per_second": 10}})
    guard = monitor.guard("acme", "github")
    response = guard.call(client.get, "/repos/acme/app/commits")   # breaker + limit + retry + figures
    monitor.save(store)                                             # `integrations health` reads it

Everything takes a `Clock`, so tests run cool-downs and back-off on a `FakeClock`.
"""

from integrations.health._breaker import (
    BREAKER_STATES,
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerConfig,
    BreakerTransition,
    CircuitBreaker,
    Ticket,
)
from integrations.health._classify import (
    AWS_AUTH_CODES,
    AWS_RETRYABLE_CODES,
    ErrorClass,
    classify,
    redact,
    retry_after_seconds,
    safe_error_message,
    status_of,
)
from integrations.health._clock import Clock, FakeClock, SystemClock
from integrations.health._errors import (
    CircuitOpenError,
    NeedsCredentialsError,
    RequestFailedError,
    RetriesExhaustedError,
)
from integrations.health._figures import (
    DEGRADED,
    DOWN,
    HEALTHY,
    INTEGRATION_STATES,
    NEEDS_CREDENTIALS,
    HealthFigures,
    integration_state,
    percentile,
)
from integrations.health._guard import Guard
from integrations.health._monitor import HealthMonitor
from integrations.health._ratelimit import RateLimitConfig, RateLimiter
from integrations.health._retry import RetryPolicy, dead_letter_item

__all__ = [
    "AWS_AUTH_CODES",
    "AWS_RETRYABLE_CODES",
    "BREAKER_STATES",
    "BreakerConfig",
    "BreakerTransition",
    "CLOSED",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "DEGRADED",
    "DOWN",
    "ErrorClass",
    "FakeClock",
    "Guard",
    "HALF_OPEN",
    "HEALTHY",
    "HealthFigures",
    "HealthMonitor",
    "INTEGRATION_STATES",
    "NEEDS_CREDENTIALS",
    "NeedsCredentialsError",
    "OPEN",
    "RateLimitConfig",
    "RateLimiter",
    "RequestFailedError",
    "RetriesExhaustedError",
    "RetryPolicy",
    "SystemClock",
    "Ticket",
    "classify",
    "dead_letter_item",
    "integration_state",
    "percentile",
    "redact",
    "retry_after_seconds",
    "safe_error_message",
    "status_of",
]
