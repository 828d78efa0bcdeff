"""The retry policy on a fake clock: back-off bounds, Retry-After, the deadline, what is never retried."""

from __future__ import annotations

import asyncio
import pickle

import httpx
import pytest
from botocore import exceptions as boto_exc
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.errors import CredentialError, IntegrationsError, RecordError
from integrations.health import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    FakeClock,
    Guard,
    HealthFigures,
    NeedsCredentialsError,
    RequestFailedError,
    RetriesExhaustedError,
    RetryPolicy,
    dead_letter_item,
)
from integrations.store import EventStore

REQUEST = httpx.Request("GET", "https://api.github.com/repos/acme/app/commits")


class Service:
    """A scripted service: each call advances the clock by `latency` and answers the next outcome."""

    def __init__(self, clock: FakeClock, outcomes: list, latency: float = 0.0) -> None:
        self.clock = clock
        self.outcomes = list(outcomes)
        self.latency = latency
        self.calls = 0
        self.started_at: list[float] = []

    def __call__(self):
        self.started_at.append(self.clock.now())
        self.calls += 1
        self.clock.advance(self.latency)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def acall(self):
        await asyncio.sleep(0)
        return self()


def connect_error() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused", request=REQUEST)


def answer(status: int, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, request=REQUEST, text="x")


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 8),
    base_seconds=st.floats(0.01, 2.0),
    cap_seconds=st.floats(0.05, 20.0),
    deadline_seconds=st.just(1e9),
)


@settings(max_examples=150, deadline=None)
@given(policy=policies)
def test_every_sleep_is_within_the_full_jitter_bound(policy: RetryPolicy) -> None:
    """Feature: integrations, Property 5: retry back-off is exponential with full jitter: the sleep
    after attempt n lies in [0, min(cap, base * 2**(n-1))], and a retryable failure ends, after
    max_attempts attempts, in RetriesExhaustedError carrying the cause and the attempt count."""
    clock = FakeClock()
    service = Service(clock, [connect_error()])
    guard = Guard("acme", "github", policy=policy, clock=clock)
    with pytest.raises(RetriesExhaustedError) as info:
        guard.call(service)
    assert service.calls == policy.max_attempts == info.value.attempts
    assert isinstance(info.value.cause, httpx.ConnectError)
    assert info.value.cause_type == "ConnectError"
    assert len(clock.sleeps) == policy.max_attempts - 1
    for n, slept in enumerate(clock.sleeps, start=1):
        assert 0.0 <= slept <= min(policy.cap_seconds, policy.base_seconds * 2 ** (n - 1)) + 1e-9


@settings(max_examples=100, deadline=None)
@given(retry_after=st.integers(0, 30), failures=st.integers(1, 4), cap=st.floats(0.1, 10.0))
def test_sleeps_honour_retry_after(retry_after: int, failures: int, cap: float) -> None:
    """Feature: integrations, Property 5: a wait is never shorter than the server's Retry-After."""
    clock = FakeClock()
    outcomes = [answer(429, {"Retry-After": str(retry_after)})] * failures + [answer(200)]
    service = Service(clock, outcomes)
    guard = Guard("acme", "github", policy=RetryPolicy(max_attempts=5, base_seconds=0.1, cap_seconds=cap,
                                                       deadline_seconds=1e6), clock=clock)
    assert guard.call(service).status_code == 200
    assert len(clock.sleeps) == failures
    for n, slept in enumerate(clock.sleeps, start=1):
        assert slept >= retry_after
        assert slept <= max(retry_after, min(cap, 0.1 * 2 ** (n - 1))) + 1e-9


@settings(max_examples=100, deadline=None)
@given(deadline=st.floats(0.5, 60.0), latency=st.floats(0.0, 3.0), base=st.floats(0.1, 5.0),
       retry_after=st.one_of(st.none(), st.integers(0, 90)))
def test_never_retries_past_the_deadline(deadline: float, latency: float, base: float, retry_after: int | None) -> None:
    """Feature: integrations, Property 5: no attempt starts after the retry deadline, whatever the latency
    and the server's hints; the work then ends as RetriesExhaustedError."""
    clock = FakeClock()
    failure = answer(503, {"Retry-After": str(retry_after)}) if retry_after is not None else connect_error()
    service = Service(clock, [failure], latency=latency)
    guard = Guard("acme", "github", clock=clock,
                  policy=RetryPolicy(max_attempts=1000, base_seconds=base, cap_seconds=30, deadline_seconds=deadline))
    start = clock.now()
    with pytest.raises(RetriesExhaustedError) as info:
        guard.call(service)
    assert all(t - start <= deadline + 1e-9 for t in service.started_at)
    assert sum(clock.sleeps) + latency * (service.calls - 1) <= deadline + 1e-9
    assert info.value.attempts == service.calls
    assert info.value.status == (503 if retry_after is not None else None)


@pytest.mark.parametrize("failure", [
    answer(401), answer(403),
    boto_exc.ClientError({"Error": {"Code": "ExpiredTokenException", "Message": "expired"},
                          "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetLogEvents"),
    boto_exc.NoCredentialsError(),
])
def test_auth_failures_are_not_retried(clock: FakeClock, failure) -> None:
    service = Service(clock, [failure])
    figures = HealthFigures("acme", "github")
    guard = Guard("acme", "github", clock=clock, figures=figures)
    with pytest.raises(NeedsCredentialsError) as info:
        guard.call(service)
    assert service.calls == 1 and clock.sleeps == []
    assert isinstance(info.value, CredentialError)
    assert info.value.cause is not None and (info.value.tenant, info.value.plugin) == ("acme", "github")
    assert "integrations credentials" in info.value.hint
    assert figures.last_error_class == "auth"


def test_permanent_failures_are_not_retried(clock: FakeClock) -> None:
    service = Service(clock, [answer(404)])
    with pytest.raises(RequestFailedError) as info:
        Guard("acme", "github", clock=clock).call(service)
    assert service.calls == 1 and clock.sleeps == [] and info.value.status == 404
    assert "HTTP 404 Not Found from GET https://api.github.com/repos/acme/app/commits" in str(info.value)


def test_our_own_errors_pass_through_untouched(clock: FakeClock) -> None:
    service = Service(clock, [RecordError("bad record", record_index=3)])
    with pytest.raises(RecordError):
        Guard("acme", "github", clock=clock).call(service)
    assert service.calls == 1


def test_an_open_breaker_stops_the_retries(clock: FakeClock) -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=2, cooldown_seconds=300), clock=clock)
    service = Service(clock, [connect_error()])
    guard = Guard("acme", "github", clock=clock, breaker=breaker,
                  policy=RetryPolicy(max_attempts=10, base_seconds=0.5, deadline_seconds=1000))
    with pytest.raises(CircuitOpenError):
        guard.call(service)
    assert service.calls == 2 and len(clock.sleeps) == 2  # no retry storm
    with pytest.raises(CircuitOpenError):
        guard.call(service)
    assert service.calls == 2 and len(clock.sleeps) == 2  # failing fast, no sleeping either


def test_async_calls_retry_on_the_clock(clock: FakeClock) -> None:
    service = Service(clock, [connect_error(), answer(429, {"Retry-After": "2"}), answer(200)])
    guard = Guard("acme", "github", clock=clock, policy=RetryPolicy(base_seconds=0.1, cap_seconds=0.2))
    result = asyncio.run(guard.acall(service.acall))
    assert result.status_code == 200 and service.calls == 3
    assert clock.sleeps[0] <= 0.1 and clock.sleeps[1] >= 2


def test_async_exhaustion_and_auth(clock: FakeClock) -> None:
    guard = Guard("acme", "github", clock=clock, policy=RetryPolicy(max_attempts=3))
    with pytest.raises(RetriesExhaustedError) as info:
        asyncio.run(guard.acall(Service(clock, [connect_error()]).acall))
    assert info.value.attempts == 3
    with pytest.raises(NeedsCredentialsError):
        asyncio.run(guard.acall(Service(clock, [answer(401)]).acall))


def test_retries_exhausted_pickles_without_its_live_cause(clock: FakeClock) -> None:
    with pytest.raises(RetriesExhaustedError) as info:
        Guard("acme", "github", clock=clock, policy=RetryPolicy(max_attempts=2)).call(Service(clock, [answer(502)]))
    back = pickle.loads(pickle.dumps(info.value))
    assert isinstance(back, IntegrationsError)
    assert (back.attempts, back.status, back.tenant, back.plugin) == (2, 502, "acme", "github")
    assert back.cause_message == "HTTP 502 Bad Gateway from GET https://api.github.com/repos/acme/app/commits"


def test_dead_letter_item_goes_into_the_store(tmp_path, clock: FakeClock) -> None:
    request = {"method": "GET", "url": "https://api.github.com/repos/acme/app/commits?per_page=100&token=s3cr3t",
               "headers": {"Authorization": "Bearer s3cr3t-token"}, "params": {"since": "2024-01-01T00:00:00Z"}}
    with pytest.raises(RetriesExhaustedError) as info:
        Guard("acme", "github", clock=clock, policy=RetryPolicy(max_attempts=2)).call(Service(clock, [answer(503)]))
    item = dead_letter_item(request, info.value)
    store = EventStore(tmp_path / "store.duckdb")
    assert store.add_dead_letters("acme", "github", "commits", [item], kind="fetch") == 1
    [row] = store.list_dead_letters("acme", kind="fetch")
    assert "s3cr3t" not in str(row)
    assert row["record"]["headers"]["Authorization"] == "[redacted]"
    assert row["record"]["params"] == {"since": "2024-01-01T00:00:00Z"}
    assert row["reason"].startswith("github (tenant acme): gave up after 2 attempt(s)")
    assert row["kind"] == "fetch" and row["status"] == "open"
