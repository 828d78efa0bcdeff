"""Health figures agree with the calls made (Property 10), and the states people read."""

from __future__ import annotations

import math
from datetime import timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.health import (
    BreakerConfig,
    FakeClock,
    HealthMonitor,
    NeedsCredentialsError,
    RequestFailedError,
    RetriesExhaustedError,
    RetryPolicy,
    percentile,
)

REQUEST = httpx.Request("GET", "https://api.github.com/repos/acme/app/commits")
WINDOW = 30.0


def reference_percentile(values: list[float], p: int) -> float | None:
    """Linear interpolation between closest ranks, written out (numpy's default method, without numpy)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


OUTCOMES = {
    "ok": None,
    "retryable": lambda: httpx.ConnectError("refused", request=REQUEST),
    "auth": lambda: httpx.Response(401, request=REQUEST),
    "permanent": lambda: httpx.Response(422, request=REQUEST),
}
RAISES = {"retryable": RetriesExhaustedError, "auth": NeedsCredentialsError, "permanent": RequestFailedError}

calls = st.lists(st.tuples(st.sampled_from(sorted(OUTCOMES)), st.integers(0, 5000), st.sampled_from([0, 1, 5, 40])),
                 max_size=60)


@settings(max_examples=150, deadline=None)
@given(calls=calls, latency_window=st.integers(1, 20))
def test_property_10_figures_agree_with_the_calls_made(calls: list, latency_window: int) -> None:
    """Feature: integrations, Property 10: for any sequence of calls (successes and failures of each
    class, with any latencies), the health figures agree with the calls made: counts, consecutive
    failures, latency p50/p95 over the bounded window of recent calls, last success and failure,
    last error class, and the integration state derived from them."""
    clock = FakeClock()
    monitor = HealthMonitor(clock=clock, latency_window=latency_window,
                            retry=RetryPolicy(max_attempts=1),
                            breaker=BreakerConfig(failure_threshold=10**6, window_seconds=WINDOW))
    guard = monitor.guard("acme", "github")
    latencies, last_success, last_failure, last_class, failure_times = [], None, None, None, []
    for kind, latency_ms, gap_s in calls:
        clock.advance(gap_s)

        def service(kind=kind, latency_ms=latency_ms):
            clock.advance(latency_ms / 1000)
            outcome = OUTCOMES[kind]
            if outcome is None:
                return httpx.Response(200, request=REQUEST)
            made = outcome()
            if isinstance(made, BaseException):
                raise made
            return made

        if kind == "ok":
            guard.call(service)
            last_success = clock.wall()
        else:
            with pytest.raises(RAISES[kind]):
                guard.call(service)
            last_failure, last_class = clock.wall(), kind
            if kind == "retryable":
                failure_times.append(clock.now())
        latencies.append(latency_ms)

    report = monitor.report("acme", "github")
    kinds = [kind for kind, _, _ in calls]
    trailing = next((i for i, k in enumerate(reversed(kinds)) if k == "ok"), len(kinds))  # failures since last ok
    assert report["calls"] == len(calls)
    assert report["successes"] == kinds.count("ok")
    assert report["failures"] == len(kinds) - kinds.count("ok")
    assert report["failures_by_class"] == {k: kinds.count(k) for k in ("auth", "permanent", "retryable") if k in kinds}
    assert report["consecutive_failures"] == trailing
    recent = latencies[-latency_window:]
    assert report["latency_samples"] == len(recent)
    for p, key in ((50, "latency_p50_ms"), (95, "latency_p95_ms")):
        expected = reference_percentile(recent, p)
        assert (report[key] is None) if expected is None else report[key] == pytest.approx(expected, abs=2e-3)
    assert report["last_success"] == (last_success.isoformat() if last_success else None)
    assert report["last_failure"] == (last_failure.isoformat() if last_failure else None)
    assert report["last_error_class"] == last_class
    recent_failures = sum(1 for t in failure_times if clock.now() - t < WINDOW)
    if trailing and last_class == "auth":
        expected_state = "needs_credentials"
    elif trailing or recent_failures:
        expected_state = "degraded"
    else:
        expected_state = "healthy"
    assert report["state"] == expected_state
    assert report["breaker_state"] == "closed" and report["rejected"] == 0


def test_percentile_edges() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4], 0) == 1 and percentile([1, 2, 3, 4], 100) == 4
    with pytest.raises(ValueError):
        percentile([1, 2], 50.5)


def test_states_follow_the_breaker(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock=clock, retry=RetryPolicy(max_attempts=1),
                            breaker=BreakerConfig(failure_threshold=2, window_seconds=10, cooldown_seconds=60))
    guard = monitor.guard("acme", "cloudwatch")
    assert monitor.report("acme", "cloudwatch")["state"] == "healthy"

    def refused():
        raise httpx.ConnectError("refused", request=REQUEST)

    with pytest.raises(RetriesExhaustedError):
        guard.call(refused)
    assert monitor.report("acme", "cloudwatch")["state"] == "degraded"
    with pytest.raises(RetriesExhaustedError):
        guard.call(refused)
    report = monitor.report("acme", "cloudwatch")
    assert (report["state"], report["breaker_state"], report["breaker_opens"]) == ("down", "open", 1)
    assert report["breaker_next_attempt_at"] == (clock.wall() + timedelta(seconds=60)).isoformat()
    assert not monitor.is_available("acme", "cloudwatch")
    assert monitor.is_available("globex", "cloudwatch")  # other tenants are untouched
    clock.advance(60)
    assert monitor.report("acme", "cloudwatch")["state"] == "degraded"  # half-open
    guard.call(lambda: httpx.Response(200, request=REQUEST))
    report = monitor.report("acme", "cloudwatch")
    assert (report["state"], report["breaker_state"]) == ("healthy", "closed")
    assert report["breaker_last_transition"]["to"] == "closed"
    assert report["rejected"] == 0
    with pytest.raises(NeedsCredentialsError):
        guard.call(lambda: httpx.Response(403, request=REQUEST, text='{"message": "Bad credentials"}'))
    assert monitor.states() == {("acme", "cloudwatch"): "needs_credentials", ("globex", "cloudwatch"): "healthy"}


def test_last_error_keeps_no_secret(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock=clock, retry=RetryPolicy(max_attempts=1))
    secret_request = httpx.Request("GET", "https://api.github.com/x?client_secret=hunter2hunter2")
    with pytest.raises(RequestFailedError):
        monitor.guard("acme", "github").call(lambda: httpx.Response(400, request=secret_request))
    assert "hunter2" not in str(monitor.report("acme", "github"))
