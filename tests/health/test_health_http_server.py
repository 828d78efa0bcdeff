"""The guard against real HTTP servers on 127.0.0.1: one that recovers, one that is down."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from integrations.health import (
    BreakerConfig,
    CircuitOpenError,
    FakeClock,
    HealthMonitor,
    RetriesExhaustedError,
    RetryPolicy,
)

POLICY = RetryPolicy(max_attempts=6, base_seconds=0.01, cap_seconds=0.05, deadline_seconds=120)


def test_flaky_server_recovers_through_500s_and_429s(flaky_server, clock: FakeClock) -> None:
    base_url, script = flaky_server
    monitor = HealthMonitor(clock=clock, retry=POLICY, breaker=BreakerConfig(failure_threshold=10))
    with httpx.Client(base_url=base_url, timeout=5) as client:
        response = monitor.guard("acme", "github").call(client.get, "/flaky/sync")
    assert response.status_code == 200 and response.json() == {"key": "sync", "hits": 5}
    assert script.hits["sync"] == 5
    # two 500s (jittered back-off, at most 0.01 then 0.02 s), then two 429s with Retry-After: 1
    assert len(clock.sleeps) == 4
    assert clock.sleeps[0] <= 0.01 and clock.sleeps[1] <= 0.02
    assert clock.sleeps[2] >= 1.0 and clock.sleeps[3] >= 1.0
    report = monitor.report("acme", "github")
    assert (report["calls"], report["failures"], report["successes"]) == (5, 4, 1)
    assert report["breaker_state"] == "closed"
    assert report["last_error"].startswith("HTTP 429 Too Many Requests from GET http://127.0.0.1:")


def test_flaky_server_recovers_with_an_async_client(flaky_server, clock: FakeClock) -> None:
    base_url, script = flaky_server
    monitor = HealthMonitor(clock=clock, retry=POLICY)

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
            return await monitor.guard("acme", "github").acall(client.get, "/flaky/async")

    assert asyncio.run(fetch()).status_code == 200
    assert script.hits["async"] == 5
    assert [s >= 1.0 for s in clock.sleeps] == [False, False, True, True]


def test_too_few_attempts_exhaust_against_the_real_server(flaky_server, clock: FakeClock) -> None:
    base_url, _ = flaky_server
    monitor = HealthMonitor(clock=clock, retry=RetryPolicy(max_attempts=3, base_seconds=0.01))
    with httpx.Client(base_url=base_url, timeout=5) as client, pytest.raises(RetriesExhaustedError) as info:
        monitor.guard("acme", "github").call(client.get, "/flaky/short")
    assert (info.value.attempts, info.value.status) == (3, 429)


def test_a_server_that_is_down_opens_the_breaker(closed_port_url: str, clock: FakeClock) -> None:
    monitor = HealthMonitor(clock=clock, retry=RetryPolicy(max_attempts=10, base_seconds=0.01),
                            breaker=BreakerConfig(failure_threshold=3, cooldown_seconds=30))
    sent = []
    with httpx.Client(base_url=closed_port_url, timeout=2,
                      event_hooks={"request": [sent.append]}) as client:
        guard = monitor.guard("acme", "github")
        with pytest.raises(CircuitOpenError) as info:
            guard.call(client.get, "/repos/acme/app/commits")
        assert len(sent) == 3  # three connection attempts, then the breaker cut the retries short
        assert info.value.retry_in == pytest.approx(30.0, abs=0.1)
        with pytest.raises(CircuitOpenError):
            guard.call(client.get, "/repos/acme/app/commits")
        assert len(sent) == 3  # failing fast: nothing sent
    report = monitor.report("acme", "github")
    assert (report["state"], report["breaker_state"], report["rejected"]) == ("down", "open", 2)
    assert report["failures_by_class"] == {"retryable": 3}
    assert report["last_error"].startswith("ConnectError on GET " + closed_port_url)
