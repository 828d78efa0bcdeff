"""The HTTP sink against a real receiver on 127.0.0.1 that fails for a while: nothing lost, nothing out of order."""

from __future__ import annotations

from integrations.health import FakeClock, HealthMonitor
from runner._sinks import CLOUDEVENTS_BATCH, build_sinks, deliver_pending, parse_sinks
from tests.runner.conftest import TENANTS, outbox_rows, stored


def http_sinks(url: str, **extra):
    config = {"name": "processor", "type": "http", "url": url, "batch_size": 5,
              "retry": {"max_attempts": 2, "base_seconds": 0.01, "cap_seconds": 0.05},
              "breaker": {"failure_threshold": 50}, **extra}
    return build_sinks(parse_sinks([{"name": "store", "type": "duckdb"}, config]))


def a_run(store, sinks, tenant):
    """One delivery as a run makes it: a fresh health monitor (breakers start closed) on a fake clock."""
    return deliver_pending(store, sinks, tenant, health=HealthMonitor(clock=FakeClock()))


def first_occurrences(ids):
    seen, out = set(), []
    for event_id in ids:
        if event_id not in seen:
            seen.add(event_id)
            out.append(event_id)
    return out


def test_http_sink_receives_every_stored_event_through_an_outage(filled_store, receiver, cloudevents_validator):
    """Down for a whole run, then flaky (refusals and a lost answer), then up: every stored event arrives,
    in order per tenant, and the received events de-duplicated by id are exactly the stored ones."""
    sinks = http_sinks(receiver.url)
    receiver.default = "refuse"
    reports = {tenant: a_run(filled_store, sinks, tenant) for tenant in TENANTS}
    for tenant, (store_report, http_report) in reports.items():
        assert store_report.status == "ok" and store_report.pending == 0
        assert http_report.status == "failed" and http_report.delivered == 0
        assert "503" in http_report.error
        assert http_report.pending == http_report.queued == len(stored(filled_store, tenant))
    assert receiver.batches == []

    receiver.default = "ok"
    receiver.plan = ["ok", "refuse", "refuse", "lost-answer", "ok", "refuse", "refuse"]
    runs, pending = 1, 1
    while pending:
        pending = sum(a_run(filled_store, sinks, tenant)[1].pending for tenant in TENANTS)
        runs += 1
        assert runs < 10
    assert runs >= 3  # the flaky stretch left work for a later run

    for tenant in TENANTS:
        expected = stored(filled_store, tenant)
        received = receiver.received(tenant)
        ids = [ce["id"] for ce in received]
        assert set(ids) == set(expected)
        assert {ce["id"]: ce["data"] for ce in received} == expected
        seq_order = [event_id for _seq, event_id, _done in outbox_rows(filled_store, tenant, "processor")]
        assert first_occurrences(ids) == seq_order
        for ce in received:
            assert ce["source"].startswith(f"/integrations/{tenant}/")
            cloudevents_validator.validate(ce)
    all_ids = [ce["id"] for batch in receiver.batches for ce in batch]
    assert len(all_ids) > len(set(all_ids))  # the lost answer made the sink send a batch twice
    assert set(receiver.content_types) == {CLOUDEVENTS_BATCH}
    assert all(len(batch) <= 5 for batch in receiver.batches)


def test_a_failed_batch_blocks_later_events_of_its_tenant_only(filled_store, receiver):
    """No overtaking: while a batch of one tenant fails, none of its later events are sent; the other tenant goes on."""
    sinks = http_sinks(receiver.url)
    receiver.plan = ["ok", "refuse", "refuse"]  # demo: first batch taken, second refused twice (all retries)
    demo_http = a_run(filled_store, sinks, "demo")[1]
    assert demo_http.status == "failed" and demo_http.delivered == 5
    assert receiver.requests == 3
    acme_http = a_run(filled_store, sinks, "acme")[1]
    assert acme_http.status == "ok" and acme_http.pending == 0
    demo_rows = outbox_rows(filled_store, "demo", "processor")
    assert [done for _s, _e, done in demo_rows] == [True] * 5 + [False] * (len(demo_rows) - 5)
    with filled_store.reader() as conn:
        attempts, error = conn.execute("SELECT max(attempts), any_value(last_error) FROM sink_outbox "
                                       "WHERE tenant_id = 'demo' AND delivered_at IS NULL AND last_error IS NOT NULL").fetchall()[0]
    assert attempts == 1 and "503" in error


def test_breaker_opens_and_fails_fast_until_its_cooldown(filled_store, receiver):
    """A monitor kept across deliveries (the scheduler's): after the breaker opens no request is made until cool-down."""
    sinks = http_sinks(receiver.url, breaker={"failure_threshold": 2, "cooldown_seconds": 30},
                       retry={"max_attempts": 2, "base_seconds": 0.01})
    clock = FakeClock()
    health = HealthMonitor(clock=clock)
    receiver.default = "refuse"
    first = deliver_pending(filled_store, sinks, "demo", health=health)[1]
    assert first.status == "failed" and receiver.requests == 2
    second = deliver_pending(filled_store, sinks, "demo", health=health)[1]
    assert second.status == "failed" and "circuit open" in second.error
    assert receiver.requests == 2  # failed fast, nothing sent
    receiver.default = "ok"
    clock.advance(31)
    third = deliver_pending(filled_store, sinks, "demo", health=health)[1]
    assert third.status == "ok" and third.pending == 0
    assert {ce["id"] for ce in receiver.received("demo")} == set(stored(filled_store, "demo"))
    figures = {row["plugin"]: row for row in health.snapshot("*")}
    assert figures["sink:processor"]["breaker_state"] == "closed" and figures["sink:processor"]["failures"] == 2
    acme = deliver_pending(filled_store, sinks, "acme", health=health)[1]
    assert acme.status == "ok" and acme.pending == 0


def test_once_the_endpoint_is_down_other_tenants_fail_fast(filled_store, receiver):
    """One endpoint serves every tenant: the breaker opened by one tenant's batch spares the others the retries."""
    sinks = http_sinks(receiver.url, breaker={"failure_threshold": 2, "cooldown_seconds": 30},
                       retry={"max_attempts": 2, "base_seconds": 0.01})
    health = HealthMonitor(clock=FakeClock())
    receiver.default = "refuse"
    demo = deliver_pending(filled_store, sinks, "demo", health=health)[1]
    acme = deliver_pending(filled_store, sinks, "acme", health=health)[1]
    assert "503" in demo.error and "circuit open" in acme.error
    assert receiver.requests == 2 and acme.pending == len(stored(filled_store, "acme"))
    with filled_store.reader() as conn:
        saved = conn.execute("SELECT tenant_id, plugin FROM integration_health").fetchall()
    assert ("*", "sink:processor") in saved


def test_token_from_environment_is_sent_and_never_reported(filled_store, receiver, monkeypatch):
    token = "tok-" + "x" * 20
    monkeypatch.setenv("EVENTS_TOKEN", token)
    sinks = http_sinks(receiver.url, token_env="EVENTS_TOKEN")
    receiver.plan = ["refuse", "refuse"]
    report = a_run(filled_store, sinks, "demo")[1]
    assert token not in (report.error or "")
    a_run(filled_store, sinks, "demo")
    assert set(receiver.authorizations) == {f"Bearer {token}"}
    monkeypatch.delenv("EVENTS_TOKEN")
    from integrations.store import _outbox

    with filled_store.transaction() as conn:
        _outbox.enqueue(conn, "demo", ["processor"])
        conn.execute("UPDATE sink_outbox SET delivered_at = NULL WHERE tenant_id = 'demo'")
    missing = a_run(filled_store, sinks, "demo")[1]
    assert missing.status == "failed" and "EVENTS_TOKEN is not set" in missing.error


def test_authorization_header_in_config_is_refused():
    import pytest

    from integrations.errors import ConfigError

    with pytest.raises(ConfigError, match="token_env"):
        parse_sinks([{"name": "p", "type": "http", "url": "http://127.0.0.1:1/x",
                      "headers": {"Authorization": "Bearer secret"}}])
