"""End to end: data made in moto through boto3, fetched by the plugin over HTTP, stored as events.

The runner runs a tenant whose cloudwatch integration polls metric_data, log_events, cloudtrail and
alarm_history through the fault proxy (no faults here) into a DuckDB file; the store is then read
back: events, severities, correlation hints, evidence links and watermarks, and a second run that
finds nothing new.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from integrations.credentials import MasterKey
from integrations.store import EventStore
from tests.plugins_cloudwatch.helpers import (
    APP_GROUP,
    CLOUDTRAIL_GROUP,
    by_source,
    cloudtrail_record,
    json_message,
    now_ms,
    put_log_events,
    run_once,
    store_keys,
)

SOURCES = ["metric_data", "log_events", "cloudtrail", "alarm_history"]


@pytest.fixture
def master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEGRATIONS_MASTER_KEY", MasterKey.generate().to_text())


def settings(url: str, **extra) -> dict:
    return {"region": "us-east-1", "endpoint_url": url,
            "metric_queries": [{"id": "errors", "namespace": "AWS/Lambda", "metric": "Errors",
                                "dimensions": {"FunctionName": "checkout-api"}, "stat": "Sum", "period": 60,
                                "unit": "Count"}],
            "log_groups": [APP_GROUP, {"name": CLOUDTRAIL_GROUP, "cloudtrail": True}],
            "alarm_name_prefixes": ["checkout-"], **extra}


def make_data(aws) -> dict:
    """Log events, CloudTrail records, a metric and an alarm that goes OK -> ALARM -> OK."""
    base = now_ms() - 10 * 60_000
    put_log_events(aws.logs, APP_GROUP, "2024/05/01/[$LATEST]0f4b52b4", [
        (base, "START RequestId: 3f1c9f5e-6a7b-4c2d-9e8f-0a1b2c3d4e5f Version: $LATEST"),
        (base + 1, "[ERROR]\t2024-05-01T12:00:00.123Z\t3f1c9f5e-6a7b-4c2d-9e8f-0a1b2c3d4e5f\tboom"),
        (base + 2, "Task timed out after 3.00 seconds"),
    ])
    root_failure = cloudtrail_record("ConsoleLogin", identity_type="Root",
                                     responseElements={"ConsoleLogin": "Failure"}, errorMessage="Failed authentication")
    denied = cloudtrail_record("DeleteUser", error_code="AccessDenied")
    fine = cloudtrail_record("ListUsers", readOnly=True)
    put_log_events(aws.logs, CLOUDTRAIL_GROUP, "123456789012_CloudTrail_us-east-1",
                   [(base + 10, json_message(root_failure)), (base + 11, json_message(denied)),
                    (base + 12, json_message(fine))])
    cw = aws.cloudwatch
    when = datetime.now(timezone.utc) - timedelta(minutes=10)
    cw.put_metric_data(Namespace="AWS/Lambda", MetricData=[
        {"MetricName": "Errors", "Dimensions": [{"Name": "FunctionName", "Value": "checkout-api"}],
         "Value": 3.0, "Unit": "Count", "Timestamp": when}])
    cw.put_metric_alarm(AlarmName="checkout-api-errors-critical", MetricName="Errors", Namespace="AWS/Lambda",
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1.0,
                        ComparisonOperator="GreaterThanThreshold",
                        Dimensions=[{"Name": "FunctionName", "Value": "checkout-api"}],
                        Tags=[{"Key": "service", "Value": "checkout-api"}, {"Key": "severity", "Value": "critical"}])
    cw.put_metric_alarm(AlarmName="other-alarm", MetricName="CPUUtilization", Namespace="AWS/EC2",
                        Statistic="Average", Period=300, EvaluationPeriods=1, Threshold=90.0,
                        ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName="checkout-api-errors-critical", StateValue="ALARM", StateReason="Threshold Crossed")
    cw.set_alarm_state(AlarmName="other-alarm", StateValue="ALARM", StateReason="not ours")
    return {"root_failure": root_failure, "denied": denied, "fine": fine}


def test_cloudwatch_end_to_end_from_the_emulator_into_the_store(aws, proxy, tenant, store_path, master_key):
    data = make_data(aws)
    store_keys(store_path, aws)
    tenants = tenant(settings(proxy.url), SOURCES)

    report, monitor = run_once(store_path, tenants)
    reports = by_source(report)
    assert {s: reports[("cloudwatch", s)].status for s in SOURCES} == dict.fromkeys(SOURCES, "ok"), \
        [r.error for r in report.sources]
    store = EventStore(store_path)
    events = {(e.kind, e.integration_context.external_id): e for e in store.query_events("acme", limit=1000)}

    # metric datapoint
    (metric,) = [e for e in events.values() if e.kind == "metric"]
    assert metric.attributes["namespace"] == "AWS/Lambda" and metric.attributes["statistic"] == "Sum"
    assert metric.attributes["value"] == 3.0 and metric.attributes["unit"] == "Count"
    assert {"type": "resource_id", "value": "service:checkout-api", "confidence": 0.8} in \
        [h.model_dump() for h in metric.integration_context.correlation_hints]
    assert metric.integration_context.evidence_links[0].type == "metric"

    # log events: the level of each message, the Lambda service, the console link to the stream
    logs = sorted((e for e in events.values() if e.kind == "log"), key=lambda e: e.occurred_at)
    assert [e.severity for e in logs] == ["info", "medium", "medium"]
    assert all("service:checkout-api" in e.resource_ids for e in logs)
    link = logs[1].integration_context.evidence_links[0]
    assert link.type == "log" and "$252Faws$252Flambda$252Fcheckout-api" in link.url and "start$3D" in link.url

    # CloudTrail records from the trail's log group: security events with raised severity
    audits = {e.attributes["event_name"]: e for e in events.values() if e.kind == "audit"}
    assert {n: e.severity for n, e in audits.items()} == {"ConsoleLogin": "critical", "DeleteUser": "medium",
                                                          "ListUsers": "info"}
    assert audits["DeleteUser"].event_type == "security"
    assert audits["DeleteUser"].attributes["error_code"] == "AccessDenied"
    assert audits["ConsoleLogin"].integration_context.external_id == data["root_failure"]["eventID"]

    # the alarm state change, critical from its tag, with the alarm's ARN and console link
    alarms = [e for e in events.values() if e.kind == "alarm"]
    assert [(e.attributes["alarm_name"], e.attributes["new_state"], e.severity) for e in alarms] == [
        ("checkout-api-errors-critical", "ALARM", "critical")]
    alarm = alarms[0]
    assert alarm.attributes["tags"] == [{"Key": "service", "Value": "checkout-api"},
                                        {"Key": "severity", "Value": "critical"}]
    assert "arn:aws:cloudwatch:us-east-1:123456789012:alarm:checkout-api-errors-critical" in alarm.resource_ids
    assert alarm.integration_context.evidence_links[0].url.endswith("#alarmsV2:alarm/checkout-api-errors-critical")

    # watermarks: one cursor per log group, metric query and alarm
    marks = {s: store.get_watermarks("acme", "cloudwatch", s) for s in SOURCES}
    assert set(marks["log_events"]) == {f"log_group:{APP_GROUP}"}
    assert set(marks["cloudtrail"]) == {f"log_group:{CLOUDTRAIL_GROUP}"}
    assert set(marks["metric_data"]) == {"metric:errors"}
    assert set(marks["alarm_history"]) == {"alarm:checkout-api-errors-critical"}
    assert len(json.loads(marks["log_events"][f"log_group:{APP_GROUP}"])["seen"]) == 1

    # a second run finds nothing new; a new state change is picked up from the cursor
    count = store.count_events("acme")
    report, _ = run_once(store_path, tenants, monitor)
    assert all(r.status == "ok" and r.events == 0 for r in report.sources), \
        [(r.source, r.events) for r in report.sources]
    assert store.count_events("acme") == count
    aws.cloudwatch.set_alarm_state(AlarmName="checkout-api-errors-critical", StateValue="OK", StateReason="recovered")
    report, _ = run_once(store_path, tenants, monitor)
    assert by_source(report)[("cloudwatch", "alarm_history")].events == 1
    ok = [e for e in store.query_events("acme", limit=1000) if e.kind == "alarm" and e.attributes["new_state"] == "OK"]
    assert [e.severity for e in ok] == ["info"]
