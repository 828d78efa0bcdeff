"""Client-side rate limits on a fake clock: N per second, per hour, tenants independent."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.errors import ConfigError
from integrations.health import FakeClock, HealthMonitor, RateLimitConfig, RateLimiter


@settings(max_examples=100, deadline=None)
@given(per_second=st.integers(1, 20), requests=st.integers(1, 80))
def test_n_per_second_is_respected(per_second: int, requests: int) -> None:
    """Feature: integrations, Property 5: a client-side limit of N requests per second never lets N+1
    requests go within one second, waits (on the clock) instead of failing, and never waits needlessly."""
    clock = FakeClock()
    limiter = RateLimiter({"requests_per_second": per_second}, clock=clock)
    sent = []
    for _ in range(requests):
        limiter.acquire()
        sent.append(clock.now())
    assert sent[: per_second] == [sent[0]] * min(per_second, requests)  # the first N go at once
    for i in range(len(sent) - per_second):
        assert sent[i + per_second] - sent[i] > 1.0
    # and no more waiting than the limit needs: about one second per further batch of N
    assert clock.elapsed <= ((requests - 1) // per_second) * 1.01 + 0.01
    assert limiter.acquired == requests and limiter.waited == pytest.approx(sum(clock.sleeps))


def test_per_hour_limit(clock: FakeClock) -> None:
    limiter = RateLimiter({"requests_per_second": 10, "requests_per_hour": 12}, clock=clock)
    for _ in range(12):
        limiter.acquire()
    assert clock.elapsed == pytest.approx(1.0, abs=0.01)  # 10 at once, 2 more a second later
    limiter.acquire()  # the 13th waits for the hour
    assert clock.elapsed == pytest.approx(3600.0, abs=0.01)


def test_async_acquire(clock: FakeClock) -> None:
    limiter = RateLimiter({"requestsPerSecond": 2}, clock=clock)

    async def main() -> list[float]:
        out = []
        for _ in range(5):
            await limiter.aacquire()
            out.append(clock.elapsed)
        return out

    times = asyncio.run(main())
    assert times[:2] == [0.0, 0.0] and 1.0 < times[2] < 1.01 and 2.0 < times[4] < 2.03


def test_tenants_do_not_share_a_quota(clock: FakeClock) -> None:
    monitor = HealthMonitor(clock=clock, rate_limits={"github": {"requests_per_second": 2},
                                                      ("globex", "github"): {"requests_per_second": 5}})
    ok = httpx.Response(200, request=httpx.Request("GET", "https://api.github.com/"))
    acme = monitor.guard("acme", "github")
    for _ in range(2):
        acme.call(lambda: ok)
    assert clock.sleeps == []
    for _ in range(5):  # another tenant's budget is untouched by acme's
        monitor.guard("globex", "github").call(lambda: ok)
    assert clock.sleeps == []
    acme.call(lambda: ok)  # acme's third request in the same second waits
    assert len(clock.sleeps) == 1 and clock.sleeps[0] > 0.99
    assert monitor.report("acme", "github")["rate_limit"] == {"requests_per_second": 2.0, "requests_per_hour": None}
    assert monitor.report("globex", "github")["rate_limit_waited_s"] == 0.0


def test_unlimited_never_waits(clock: FakeClock) -> None:
    limiter = RateLimiter(None, clock=clock)
    for _ in range(1000):
        limiter.acquire()
    assert clock.sleeps == []


@pytest.mark.parametrize(("config", "expected"), [
    ({"requests_per_second": 5}, [(5, 1000)]),
    ({"requests_per_second": 0.5}, [(1, 2000)]),
    ({"requests_per_hour": 5000}, [(5000, 3_600_000)]),
    ({"requests_per_second": 10, "requests_per_hour": 5000}, [(10, 1000), (5000, 3_600_000)]),
    ({"requests_per_second": 1, "requests_per_hour": 100_000}, [(1, 1000)]),   # hour cap never reached
    ({"requests_per_second": 10, "requests_per_hour": 5}, [(5, 3_600_000)]),    # hour cap bites first
])
def test_rates_from_configuration(config: dict, expected: list) -> None:
    rates = RateLimitConfig.from_config(config).rates()
    assert [(r.limit, r.interval) for r in rates] == expected


@pytest.mark.parametrize("config", [{"requests_per_second": 0}, {"requests_per_hour": -1},
                                    {"requests_per_minute": 5}, {"requests_per_second": "fast"}])
def test_bad_configuration_names_the_field(config: dict) -> None:
    with pytest.raises(ConfigError) as info:
        RateLimitConfig.from_config(config)
    assert info.value.field
