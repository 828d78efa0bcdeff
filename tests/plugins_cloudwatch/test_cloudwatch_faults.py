"""Faults between the plugin and AWS, made by the fault proxy in front of moto, on a fake clock.

* throttling (logs' ThrottlingException and LimitExceededException, CloudWatch's Throttling) and
  5xx are retried with back-off, then the run succeeds; botocore itself never retries (the proxy
  counts exactly the attempts our policy made);
* AccessDenied and an expired token are not retried: the integration needs credentials;
* an endpoint that is down is retried, then opens the breaker; the tenant's other integration
  still completes, and the next run skips CloudWatch without calling it;
* a 5xx that outlasts the retries leaves a fetch dead letter and does not move the cursor.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timedelta, timezone

import pytest

from integrations.credentials import CredentialManager, EnvironmentMasterKeys, MasterKey, parse_credential
from integrations.health import BreakerConfig, FakeClock, HealthMonitor, RetryPolicy
from integrations.plugins import PluginConfiguration, PluginCredentials, PluginInstance
from integrations.plugins.cloudwatch import CloudWatchPlugin
from integrations.store import EventStore
from tests.conftest import free_port
from tests.plugins_cloudwatch.helpers import APP_GROUP, by_source, now_ms, put_log_events, run_once, store_keys

POLICY = RetryPolicy(max_attempts=4, base_seconds=0.5, cap_seconds=8)


@pytest.fixture(autouse=True)
def master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEGRATIONS_MASTER_KEY", MasterKey.generate().to_text())


def monitor(**breaker) -> HealthMonitor:
    return HealthMonitor(clock=FakeClock(), retry=POLICY, breaker=BreakerConfig(**breaker) if breaker else None)


def logs_and_metrics(url: str) -> dict:
    return {"endpoint_url": url, "log_groups": [APP_GROUP],
            "metric_queries": [{"id": "errors", "namespace": "AWS/Lambda", "metric": "Errors", "stat": "Sum",
                                "period": 60, "dimensions": {"FunctionName": "checkout-api"}}],
            "alarm_name_prefixes": ["checkout-"]}


def some_data(aws) -> None:
    put_log_events(aws.logs, APP_GROUP, "s1", [(now_ms() - 300_000, "[ERROR] boom"), (now_ms() - 299_000, "ok")])
    aws.cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=[
        {"MetricName": "Errors", "Dimensions": [{"Name": "FunctionName", "Value": "checkout-api"}], "Value": 2.0,
         "Timestamp": datetime.now(timezone.utc) - timedelta(minutes=5)}])
    aws.cloudwatch.put_metric_alarm(AlarmName="checkout-5xx", MetricName="Errors", Namespace="AWS/Lambda",
                                    Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1.0,
                                    ComparisonOperator="GreaterThanThreshold")
    aws.cloudwatch.set_alarm_state(AlarmName="checkout-5xx", StateValue="ALARM", StateReason="Threshold Crossed")


def test_throttling_and_5xx_are_retried_with_backoff_then_the_run_succeeds(aws, proxy, tenant, store_path):
    some_data(aws)
    store_keys(store_path, aws)
    tenants = tenant(logs_and_metrics(proxy.url), ["log_events", "metric_data", "alarm_history"])
    proxy.fail("FilterLogEvents", "throttle")
    proxy.fail("FilterLogEvents", "limit_exceeded")
    proxy.fail("GetMetricData", "throttle", times=2)
    proxy.fail("DescribeAlarmHistory", "5xx")
    health = monitor(failure_threshold=10)  # five failures in a minute would open the default breaker

    report, _ = run_once(store_path, tenants, health)

    reports = by_source(report)
    assert [reports[("cloudwatch", s)].status for s in ("log_events", "metric_data", "alarm_history")] == ["ok"] * 3, \
        [r.error for r in report.sources]
    assert [reports[("cloudwatch", s)].events for s in ("log_events", "metric_data", "alarm_history")] == [2, 1, 1]
    # exactly the attempts our policy made: botocore's own retries are off
    attempts = [proxy.count(op) for op in ("FilterLogEvents", "GetMetricData", "DescribeAlarmHistory")]
    assert attempts == [3, 3, 2]
    sleeps = health.clock.sleeps
    assert len(sleeps) == 5 and all(0 <= s <= POLICY.cap_seconds for s in sleeps)
    figures = health.report("acme", "cloudwatch")
    assert figures["failures"] == 5 and figures["last_error_class"] == "retryable"
    assert figures["state"] != "needs_credentials" and figures["breaker_state"] == "closed"


def test_access_denied_is_not_retried_and_the_integration_needs_credentials(aws, proxy, tenant, store_path):
    some_data(aws)
    store_keys(store_path, aws)
    tenants = tenant(logs_and_metrics(proxy.url), ["log_events"])
    proxy.fail("FilterLogEvents", "access_denied", times=-1)
    health = monitor()

    report, _ = run_once(store_path, tenants, health)

    failed = by_source(report)[("cloudwatch", "log_events")]
    assert failed.status == "failed" and "refused the credential" in failed.error
    assert aws.secret_access_key not in failed.error and aws.access_key_id not in failed.error
    assert proxy.count("FilterLogEvents") == 1 and health.clock.sleeps == []
    assert health.report("acme", "cloudwatch")["state"] == "needs_credentials"
    assert EventStore(store_path).list_dead_letters("acme", kind="fetch") == []


def test_an_expired_token_fails_sign_in_and_the_integration_needs_credentials(aws, proxy, tenant, store_path):
    store_keys(store_path, aws)
    tenants = tenant(logs_and_metrics(proxy.url), ["log_events", "metric_data"])
    proxy.fail("GetCallerIdentity", "expired_token", times=-1)  # STS: the query protocol's XML error
    health = monitor()

    report, _ = run_once(store_path, tenants, health)

    assert {r.status for r in report.sources} == {"failed"}
    assert all("needs credentials" in r.error and "ExpiredToken" in r.error for r in report.sources)
    assert proxy.count("GetCallerIdentity") == 1 and proxy.count("FilterLogEvents") == 0
    assert health.report("acme", "cloudwatch")["state"] == "needs_credentials"


def closed_port() -> int:
    port = free_port()
    with socket.socket() as probe:  # nothing listens there: connections are refused at once
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


def test_an_endpoint_that_is_down_opens_the_breaker_and_the_other_integrations_complete(aws, tenant, store_path):
    store_keys(store_path, aws)
    github = {"github": {"sources": [{"name": "push", "mode": "samples"}]}}
    tenants = tenant(logs_and_metrics(f"http://127.0.0.1:{closed_port()}"), ["log_events", "metric_data"],
                     others=github)
    health = monitor(failure_threshold=4, cooldown_seconds=60)

    report, _ = run_once(store_path, tenants, health)
    reports = by_source(report)
    assert reports[("cloudwatch", "log_events")].status == "failed"
    assert "gave up after 4 attempt(s)" in reports[("cloudwatch", "log_events")].error
    assert reports[("github", "push")].status in ("ok", "partial") and reports[("github", "push")].events > 0
    assert health.breaker("acme", "cloudwatch").state == "open"
    assert health.report("acme", "cloudwatch")["state"] == "down"
    assert len(health.clock.sleeps) == 3

    report, _ = run_once(store_path, tenants, health)  # the breaker is open: CloudWatch is skipped
    reports = by_source(report)
    assert "circuit breaker open" in reports[("cloudwatch", "metric_data")].error
    assert reports[("github", "push")].status in ("ok", "partial")
    assert len(health.clock.sleeps) == 3  # no new attempts


def test_a_5xx_that_outlasts_the_retries_leaves_a_fetch_dead_letter_and_keeps_the_cursor(aws, proxy, tenant,
                                                                                         store_path):
    some_data(aws)
    store_keys(store_path, aws)
    tenants = tenant(logs_and_metrics(proxy.url), ["log_events"])
    health = monitor(failure_threshold=10)
    run_once(store_path, tenants, health)
    store = EventStore(store_path)
    cursor = store.get_watermarks("acme", "cloudwatch", "log_events")
    assert cursor

    put_log_events(aws.logs, APP_GROUP, "s1", [(now_ms() - 1000, "[WARN] later")])
    proxy.fail("FilterLogEvents", "5xx", times=-1)
    report, _ = run_once(store_path, tenants, health)
    failed = by_source(report)[("cloudwatch", "log_events")]
    assert failed.status == "failed" and "ServiceUnavailable" in failed.error
    (letter,) = store.list_dead_letters("acme", kind="fetch")
    assert letter["record"]["source"] == "log_events" and letter["record"]["watermarks"] == cursor
    assert store.get_watermarks("acme", "cloudwatch", "log_events") == cursor

    proxy.faults.clear()
    report, _ = run_once(store_path, tenants, health)
    assert by_source(report)[("cloudwatch", "log_events")].events == 1


def test_an_assumed_role_signs_the_calls_with_its_temporary_keys(aws, proxy, tenant, store_path):
    some_data(aws)
    manager = CredentialManager(EventStore(store_path), EnvironmentMasterKeys())
    manager.set("acme", "cloudwatch", "role", parse_credential("aws_assume_role", {
        "role_arn": "arn:aws:iam::123456789012:role/integrations-reader", "session_name": "workbench",
        "source_access_key_id": aws.access_key_id, "source_secret_access_key": aws.secret_access_key,
        "sts_endpoint_url": proxy.url}))
    tenants = tenant(logs_and_metrics(proxy.url), ["log_events"], credentials={"aws": "role"})

    report, _ = run_once(store_path, tenants, monitor())

    assert by_source(report)[("cloudwatch", "log_events")].events == 2
    assert proxy.count("AssumeRole") == 1
    signers = {key for op, key in proxy.signers if op in ("GetCallerIdentity", "FilterLogEvents")}
    assert signers and all(key.startswith("ASIA") for key in signers)  # temporary keys, not the source keys


def test_authenticate_names_the_account_and_the_health_check_asks_sts(aws, proxy):
    keys = parse_credential("aws_access_keys", {"access_key_id": aws.access_key_id,
                                                "secret_access_key": aws.secret_access_key})
    health = monitor()
    instance = PluginInstance("acme", CloudWatchPlugin())
    instance.plugin.guard = health.guard("acme", "cloudwatch")

    async def go():
        await instance.initialize(PluginConfiguration(tenant_id="acme", plugin_name="cloudwatch",
                                                      settings={"endpoint_url": proxy.url}))
        auth = await instance.authenticate(PluginCredentials("acme", {"aws": keys}))
        status = await instance.health_check()
        await instance.shutdown()
        return auth, status

    auth, status = asyncio.run(go())
    assert auth.ok and auth.message.startswith("AWS account 123456789012 as arn:aws:")
    assert status.healthy and status.details == {"region": "us-east-1", "endpoint_url": proxy.url}
    assert proxy.count("GetCallerIdentity") == 2 and health.report("acme", "cloudwatch")["successes"] == 2
    assert instance.state.value == "stopped"
