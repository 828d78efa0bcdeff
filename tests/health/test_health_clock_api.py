"""The clock seam, the monitor's per-pair configuration, and the package's public names."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import httpx
import pytest

import integrations.health as health
from integrations.health import (
    BreakerConfig,
    Clock,
    FakeClock,
    HealthMonitor,
    RetriesExhaustedError,
    RetryPolicy,
    SystemClock,
)


def test_public_api_is_exactly_all() -> None:
    public = sorted(n for n in dir(health) if not n.startswith("_") and not isinstance(getattr(health, n), type(health)))
    assert health.__all__ == sorted(health.__all__) == public


def test_both_clocks_are_clocks() -> None:
    assert isinstance(SystemClock(), Clock) and isinstance(FakeClock(), Clock)
    system = SystemClock()
    assert system.wall().tzinfo is not None
    before = system.now()
    system.sleep(0)
    asyncio.run(system.asleep(0))
    assert system.now() >= before


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=10.0, wall_start=datetime(2024, 5, 1, tzinfo=timezone.utc))
    assert clock.now() == clock.now() == 10.0
    clock.advance(2.5)
    clock.sleep(1.5)
    asyncio.run(clock.asleep(3))
    assert clock.now() == 17.0 and clock.elapsed == 7.0
    assert clock.sleeps == [1.5, 3.0]
    assert clock.wall() == datetime(2024, 5, 1, tzinfo=timezone.utc) + timedelta(seconds=7)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        FakeClock(wall_start=datetime(2024, 1, 1))


def test_configure_per_pair_keeps_what_was_learnt(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock=clock, retry=RetryPolicy(max_attempts=1))
    request = httpx.Request("GET", "https://api.github.com/")

    def refused():
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RetriesExhaustedError):
        monitor.guard("acme", "github").call(refused)
    monitor.configure("acme", "github", retry=RetryPolicy(max_attempts=3, base_seconds=0.1),
                      breaker=BreakerConfig(failure_threshold=50), rate_limit={"requests_per_hour": 100})
    guard = monitor.guard("acme", "github")
    assert guard.policy.max_attempts == 3 and guard.breaker.config.failure_threshold == 50
    with pytest.raises(RetriesExhaustedError) as info:
        guard.call(refused)
    assert info.value.attempts == 3
    report = monitor.report("acme", "github")
    assert report["calls"] == report["latency_samples"] == 4 and report["rate_limit"]["requests_per_hour"] == 100
    assert monitor.pairs() == [("acme", "github")]
    assert monitor.guard("globex", "github").policy.max_attempts == 1  # others keep the defaults
