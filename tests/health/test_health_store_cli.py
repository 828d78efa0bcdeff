"""Figures saved to the store, read back by another monitor and by `integrations health`."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from integrations.cli import cli
from integrations.errors import StoreError
from integrations.health import (
    BreakerConfig,
    CircuitOpenError,
    FakeClock,
    HealthMonitor,
    RetriesExhaustedError,
    RetryPolicy,
)
from integrations.store import EventStore
from integrations.store._health import delete_health, load_health, save_health

REQUEST = httpx.Request("GET", "https://api.github.com/repos/acme/app/commits")


def refused():
    raise httpx.ConnectError("refused", request=REQUEST)


def flap(monitor: HealthMonitor, clock: FakeClock, tenant: str, plugin: str) -> None:
    """Fail until the breaker opens, wait out the cool-down, succeed: the breaker closes again."""
    guard = monitor.guard(tenant, plugin)
    with pytest.raises(RetriesExhaustedError):
        guard.call(refused)
    with pytest.raises(CircuitOpenError):
        guard.call(refused)
    clock.advance(monitor.breaker_config.cooldown_seconds)
    guard.call(lambda: (clock.advance(0.25), httpx.Response(200, request=REQUEST))[1])


@pytest.fixture
def monitor(clock: FakeClock) -> HealthMonitor:
    return HealthMonitor(clock=clock, retry=RetryPolicy(max_attempts=2, base_seconds=0.1),
                         breaker=BreakerConfig(failure_threshold=2, cooldown_seconds=30))


def test_save_and_load(tmp_path, monitor: HealthMonitor, clock: FakeClock) -> None:
    store = EventStore(tmp_path / "s.duckdb")
    flap(monitor, clock, "acme", "github")
    monitor.guard("globex", "cloudwatch").call(lambda: "ok")
    assert monitor.save(store) == 2
    rows = load_health(store)
    assert [(r["tenant"], r["plugin"]) for r in rows] == [("acme", "github"), ("globex", "cloudwatch")]
    assert rows[0]["updated_at"] == clock.wall().isoformat()
    assert {k: rows[0][k] for k in ("calls", "failures", "breaker_opens", "breaker_state", "state")} == {
        "calls": 3, "failures": 2, "breaker_opens": 1, "breaker_state": "closed", "state": "healthy"}
    assert [r["tenant"] for r in load_health(store, tenant="globex")] == ["globex"]
    # a second save replaces, never duplicates
    monitor.save(store)
    assert len(load_health(store)) == 2
    # joining a transaction the caller holds
    with store.transaction() as conn:
        save_health(conn, "initech", "github", {"calls": 1, "state": "healthy"})
    assert len(load_health(store)) == 3
    delete_health(store, "initech")
    assert len(load_health(store)) == 2


def test_a_new_process_carries_the_counts_on(tmp_path, monitor: HealthMonitor, clock: FakeClock) -> None:
    store = EventStore(tmp_path / "s.duckdb")
    flap(monitor, clock, "acme", "github")
    monitor.save(store)
    later = HealthMonitor(clock=clock)
    assert later.restore(store) == 1
    later.guard("acme", "github").call(lambda: "ok")
    report = later.report("acme", "github")
    assert (report["calls"], report["failures"], report["breaker_opens"]) == (4, 2, 1)


def test_missing_store_and_bad_rows(tmp_path) -> None:
    assert load_health(EventStore(tmp_path / "nothing.duckdb")) == []
    with pytest.raises(StoreError):
        save_health(EventStore(tmp_path / "s.duckdb"), "", "github", {})


def test_cli_health_json_shows_a_breaker_that_opened_and_closed(tmp_path, monitor, clock) -> None:
    path = tmp_path / "store.duckdb"
    flap(monitor, clock, "acme", "github")
    monitor.save(EventStore(path))
    result = CliRunner().invoke(cli, ["health", "--db", str(path), "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["tenant"], row["plugin"], row["state"]) == ("acme", "github", "healthy")
    assert (row["breaker_state"], row["breaker_opens"]) == ("closed", 1)
    assert row["breaker_last_transition"]["from"] == "half_open" and row["breaker_last_transition"]["to"] == "closed"
    assert (row["calls"], row["failures"], row["rejected"]) == (3, 2, 1)
    assert row["latency_p50_ms"] == 0.0 and row["latency_p95_ms"] == pytest.approx(225.0)  # 250 ms of [0, 0, 250] at rank 1.9
    assert row["last_success"] == clock.wall().isoformat()


def test_cli_health_table_and_tenant_filter(tmp_path, monitor, clock) -> None:
    path = tmp_path / "store.duckdb"
    flap(monitor, clock, "acme", "github")
    with pytest.raises(RetriesExhaustedError):
        monitor.guard("globex", "cloudwatch").call(refused)
    monitor.save(EventStore(path))
    runner = CliRunner()
    result = runner.invoke(cli, ["health", "--db", str(path)])
    assert result.exit_code == 0, result.output
    for text in ("Integration health", "tenant", "p95 ms", "last error", "acme", "github", "healthy", "closed",
                 "(1x opened)", "globex", "cloudwatch", "down", "open", "ConnectError"):
        assert text in result.output
    only = runner.invoke(cli, ["health", "--db", str(path), "--tenant", "globex", "--json"])
    assert [r["tenant"] for r in json.loads(only.output)] == ["globex"]


def test_cli_health_without_figures(tmp_path) -> None:
    path = tmp_path / "none.duckdb"
    result = CliRunner().invoke(cli, ["health", "--db", str(path)])
    assert result.exit_code == 0 and "no health figures recorded" in result.output
    result = CliRunner().invoke(cli, ["health", "--db", str(path), "--json"])
    assert json.loads(result.output) == []
