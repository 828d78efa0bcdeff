"""Every shape AWS delivers a record in goes through the same mapping and gives the same event.

CloudTrail records: a log event of the trail's log group (the plugin's envelope), a log file
(`{"Records": [...]}`), an EventBridge "... via CloudTrail" event, a CloudWatch Logs subscription
payload. Log events: the plugin's envelope and a subscription payload. And AWS's own documented
examples map through `integrations map --plugin cloudwatch --source <kind> --input <file>`.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.mapping import PythonEngine, load_mapping
from tests.conftest import ROOT

MAPPINGS = ROOT / "mappings" / "cloudwatch"
EXAMPLES = MAPPINGS / "examples"
CLOUDTRAIL = load_mapping(MAPPINGS / "cloudtrail.yaml")
LOG_EVENTS = load_mapping(MAPPINGS / "log_events.yaml")
ALARMS = load_mapping(MAPPINGS / "alarm_state_change.yaml")
ENGINE = PythonEngine()
DOCUMENTED_LAMBDA_ALARM = Path(__file__).parent / "data" / "lambda_alarm_action_documented.json"


def _records_with_event_ids() -> list[dict]:
    """CloudTrail records from the goldens and the samples (one record per log event message)."""
    records = []
    envelopes = [json.loads(p.read_text()) for p in sorted((EXAMPLES / "cloudtrail").glob("*.input.json"))]
    for path in sorted((ROOT / "data" / "samples").glob("*/cloudwatch/cloudtrail.jsonl")):
        envelopes += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for envelope in envelopes:
        try:
            record = json.loads(envelope.get("event", {}).get("message", ""))
        except ValueError:
            continue  # the deliberately truncated sample
        if isinstance(record, dict) and record.get("eventID") and "Records" not in record:
            records.append(record)
    return records


RECORDS = _records_with_event_ids()


def gzip64(document: dict) -> str:
    return base64.b64encode(gzip.compress(json.dumps(document).encode(), mtime=0)).decode()


def shapes(record: dict, *, group: str, stream: str, event_id: str, ts: int, region: str, account: str) -> dict:
    """The one record in each shape it can arrive in."""
    message = json.dumps(record, separators=(",", ":"))
    detail_type = ("AWS Console Sign In via CloudTrail" if record.get("eventType") == "AwsConsoleSignIn"
                   else "AWS API Call via CloudTrail")
    return {
        "log_event": {"log_group": group, "region": region, "account_id": account,
                      "event": {"logStreamName": stream, "timestamp": ts, "message": message,
                                "ingestionTime": ts + 900, "eventId": event_id}},
        "log_file": {"Records": [record]},
        "eventbridge": {"version": "0", "id": "6f4a1c1e-0000-4000-8000-000000000000",
                        "detail-type": detail_type,
                        "source": "aws." + record["eventSource"].split(".")[0], "account": account,
                        "time": record["eventTime"], "region": region, "resources": [], "detail": record},
        "subscription": {"awslogs": {"data": gzip64({
            "messageType": "DATA_MESSAGE", "owner": account, "logGroup": group, "logStream": stream,
            "subscriptionFilters": ["all"], "logEvents": [{"id": event_id, "timestamp": ts, "message": message}]})},
            "region": region},
    }


def core(event) -> dict:
    """What must not depend on how the record arrived."""
    data = event.to_json_dict(with_ingested_at=False)
    attributes = {k: v for k, v in data["attributes"].items() if k not in ("log_group", "log_stream")}
    return {"event_id": data["event_id"], "kind": data["kind"], "event_type": data["event_type"],
            "severity": data["severity"], "title": data["title"], "occurred_at": data["occurred_at"],
            "attributes": attributes, "external_id": data["integration_context"]["external_id"]}


@settings(max_examples=120, deadline=None)
@given(record=st.sampled_from(RECORDS), group=st.sampled_from(["CloudTrail/DefaultLogGroup", "aws-cloudtrail-logs-1"]),
       event_id=st.from_regex(r"[0-9]{56}", fullmatch=True), ts=st.integers(1_500_000_000_000, 1_800_000_000_000),
       region=st.sampled_from(["us-east-1", "eu-west-3"]))
def test_a_cloudtrail_record_gives_the_same_event_in_every_shape(record, group, event_id, ts, region):
    """Feature: integrations, Property 4: one CloudTrail record maps to one event, whatever shape carried it."""
    stream = f"123456789012_CloudTrail_{region}"
    results = {name: ENGINE.map(CLOUDTRAIL, [shape], tenant_id="acme")
               for name, shape in shapes(record, group=group, stream=stream, event_id=event_id, ts=ts, region=region,
                                         account="123456789012").items()}
    cores = {}
    for name, result in results.items():
        assert not result.rejections, (name, [r.reason for r in result.rejections])
        (event,) = result.events
        cores[name] = core(event)
    assert all(c == cores["log_event"] for c in cores.values()), cores
    # the log shapes also say where the record was read, with a console link to the stream
    for name in ("log_event", "subscription"):
        (event,) = results[name].events
        assert event.attributes["log_group"] == group
        assert any(link.metadata.get("log_stream") == stream for link in event.integration_context.evidence_links)


messages = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=80)


@settings(max_examples=120, deadline=None)
@given(events=st.lists(st.tuples(st.integers(1_500_000_000_000, 1_800_000_000_000), messages), min_size=1,
                       max_size=6),
       group=st.sampled_from(["/aws/lambda/checkout-api", "/ecs/payments", "demo-log-group"]),
       stream=st.sampled_from(["2024/05/01/[$LATEST]0f4b52b4", "web/web/1f2e3d"]))
def test_a_subscription_payload_gives_the_events_of_the_same_log_events_read_one_by_one(events, group, stream):
    """Feature: integrations, Property 4: log events map the same from FilterLogEvents and a subscription."""
    ids = [f"{37000000000000000000000000000000000000000000000000000000 + i}" for i in range(len(events))]
    envelopes = [{"log_group": group, "region": "us-east-1", "account_id": "123456789012",
                  "event": {"logStreamName": stream, "timestamp": ts, "message": msg, "eventId": eid}}
                 for (ts, msg), eid in zip(events, ids)]
    payload = {"awslogs": {"data": gzip64({
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": group, "logStream": stream,
        "subscriptionFilters": ["errors"],
        "logEvents": [{"id": eid, "timestamp": ts, "message": msg} for (ts, msg), eid in zip(events, ids)]})},
        "region": "us-east-1"}
    one_by_one = ENGINE.map(LOG_EVENTS, envelopes, tenant_id="acme")
    together = ENGINE.map(LOG_EVENTS, [payload], tenant_id="acme")
    assert not one_by_one.rejections and not together.rejections
    assert [e.to_json_dict(with_ingested_at=False) for e in together.events] == \
        [e.to_json_dict(with_ingested_at=False) for e in one_by_one.events]


def test_a_control_message_is_filtered():
    # "CWL CONTROL MESSAGE", CloudWatch Logs User Guide, *Using subscription filters* (Kinesis example)
    control = {"awslogs": {"data": gzip64({
        "messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
        "subscriptionFilters": [], "logEvents": [{"id": "", "timestamp": 1432826855000,
                                                  "message": "CWL CONTROL MESSAGE: Checking health of destination "
                                                             "Kinesis stream."}]})}}
    for mapping in (LOG_EVENTS, CLOUDTRAIL):
        result = ENGINE.map(mapping, [control], tenant_id="acme")
        assert (result.read, result.filtered, len(result.events)) == (1, 1, 0)


def test_a_subscription_payload_that_does_not_decode_is_rejected_with_the_reason():
    result = ENGINE.map(LOG_EVENTS, [{"awslogs": {"data": "bm90IGd6aXA="}}], tenant_id="acme")
    (rejection,) = result.rejections
    assert "gunzip_base64(): cannot decode" in rejection.reason


def test_awss_documented_lambda_alarm_event_is_rejected_for_its_broken_times_not_guessed():
    """The page prints "2023-08-04T12: 36: 15.490+0000"; the golden keeps it repaired (SOURCES.md)."""
    documented = json.loads(DOCUMENTED_LAMBDA_ALARM.read_text())
    (rejection,) = ENGINE.map(ALARMS, [documented], tenant_id="demo").rejections
    assert rejection.field == "occurred_at" and "2023-08-04T12: 36: 15.490+0000" in rejection.reason
    repaired_path = EXAMPLES / "alarm_state_change" / "lambda_alarm_action_repaired_times.input.json"
    repaired = json.loads(repaired_path.read_text())
    (event,) = ENGINE.map(ALARMS, [repaired], tenant_id="demo").events
    assert (event.severity, event.attributes["source"]) == ("high", "lambda_alarm_action")


DOCUMENTED = sorted(
    [p for p in (EXAMPLES / "alarm_state_change").glob("*.input.json")]
    + [p for p in (EXAMPLES / "log_events").glob("subscription_*.input.json")]
    + [p for p in (EXAMPLES / "cloudtrail").glob("*.input.json")
       if p.name.startswith(("eventbridge_", "log_file_create", "log_file_update", "subscription_"))])


@pytest.mark.parametrize("path", DOCUMENTED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_integrations_map_maps_awss_documented_examples(cli, path):
    result = cli("map", "--plugin", "cloudwatch", "--source", path.parent.name, "--input", str(path))
    assert result.code == 0, result
    expected = path.with_name(path.name.replace(".input.json", ".expected.jsonl")).read_text().splitlines()
    assert [json.dumps(e, sort_keys=True, ensure_ascii=False) for e in result.json_lines()] == expected
