"""The Python engine: fan-out, filters, rejections with their place, and the counting rule."""

from __future__ import annotations

import copy

from integrations.events import event_id_for
from integrations.mapping import PythonEngine, load_mapping

from tests.mapping.conftest import PUSH, push_record


def run(mapping, records, tenant="demo"):
    return PythonEngine().map(mapping, records, tenant_id=tenant)


def test_push_fans_out_into_one_event_per_commit(push_mapping):
    result = run(push_mapping, [push_record(3)])
    assert result.summary() == {"read": 1, "mapped": 1, "filtered": 0, "rejected": 0, "events": 3}
    first = result.events[0]
    assert first.kind == "commit" and first.event_type == "delivery"
    assert first.title == "octo/checkout-api: change 0"
    assert first.occurred_at.isoformat() == "2024-05-01T10:00:00+00:00"
    ctx = first.integration_context
    assert ctx.original_timestamp == "2024-05-01T12:00:00+02:00"
    assert ctx.external_id == "0" * 40
    assert first.event_id == event_id_for("demo", "github", "commit", "0" * 40)
    assert first.attributes == {"sha": "0" * 40, "author": {"name": "Mona"}}
    assert [h.value for h in ctx.correlation_hints] == ["octo/checkout-api", "0" * 40]
    assert ctx.evidence_links[0].url.endswith("/commit/" + "0" * 40)
    assert ctx.evidence_links[0].metadata == {"sha": "0" * 40}


def test_empty_push_is_filtered_not_rejected(push_mapping):
    result = run(push_mapping, [push_record(0), {"zen": "ping"}])
    assert (result.mapped, result.filtered, result.rejected) == (0, 2, 0)


def test_when_filters_records():
    mapping = load_mapping(PUSH.replace("for_each: commits", "when: \"ref == 'refs/heads/main'\"\n    for_each: commits"))
    result = run(mapping, [push_record(1), push_record(1, ref="refs/heads/dev")])
    assert (result.mapped, result.filtered) == (1, 1)


def test_severity_rules_first_match_wins(push_mapping):
    record = push_record(2)
    record["commits"][1]["distinct"] = False
    result = run(push_mapping, [record])
    assert [e.severity for e in result.events] == ["info", "low"]


def test_a_record_any_of_whose_events_fails_is_rejected_whole(push_mapping):
    record = push_record(3)
    del record["commits"][2]["timestamp"]
    good = push_record(1)
    result = run(push_mapping, [good, record])
    assert result.summary() == {"read": 2, "mapped": 1, "filtered": 0, "rejected": 1, "events": 1}
    rejection = result.rejections[0]
    assert rejection.record_index == 1 and rejection.field == "occurred_at" and rejection.output == "commit"
    assert "expected an ISO-8601 timestamp string, got null" in rejection.reason
    assert rejection.record == record


def test_required_field_missing(push_mapping):
    record = push_record(1)
    record["commits"][0]["id"] = None
    (rejection,) = run(push_mapping, [record]).rejections
    assert rejection.field == "attributes.sha" and "required field 'attributes.sha' is missing" in rejection.reason


def test_unparseable_timestamp_and_epoch_hint(push_mapping):
    a, b = push_record(1), push_record(1)
    a["commits"][0]["timestamp"] = "yesterday"
    b["commits"][0]["timestamp"] = 1700000000
    rejections = run(push_mapping, [a, b]).rejections
    assert "'yesterday' is not ISO-8601" in rejections[0].reason
    assert "from_epoch()" in rejections[1].reason


def test_wrong_type_in_an_expression_names_the_field(push_mapping):
    record = push_record(1)
    record["repository"]["full_name"] = {"nested": True}
    (rejection,) = run(push_mapping, [record]).rejections
    assert rejection.field in ("title", "resource_ids", "correlation_hints")


def test_for_each_that_is_not_a_list_is_rejected(push_mapping):
    (rejection,) = run(push_mapping, [push_record(0, commits="nope")]).rejections
    assert rejection.field == "for_each" and "must give a list" in rejection.reason


def test_non_object_records_are_rejected_or_filtered_never_crash(push_mapping):
    result = run(push_mapping, [None, 3, "text", [1, 2], {"commits": [None]}])
    assert result.read == 5 and result.read == result.mapped + result.filtered + result.rejected


def test_mapping_does_not_change_the_record(push_mapping):
    record = push_record(2)
    before = copy.deepcopy(record)
    run(push_mapping, [record])
    assert record == before


def test_tenant_is_part_of_the_event_id(push_mapping):
    a = run(push_mapping, [push_record(1)], tenant="demo").events[0]
    b = run(push_mapping, [push_record(1)], tenant="acme").events[0]
    assert a.event_id != b.event_id and a.tenant_id == "demo" and b.tenant_id == "acme"


def test_multiple_outputs_from_one_source():
    text = PUSH.replace("outputs:\n", "outputs:\n  - kind: push\n    event_type: delivery\n    fields:\n"
                        "      external_id: ref\n      occurred_at: \"'2024-01-01T00:00:00Z'\"\n      title: ref\n")
    mapping = load_mapping(text)
    result = run(mapping, [push_record(2)])
    assert sorted(e.kind for e in result.events) == ["commit", "commit", "push"]


def test_numbers_become_text_for_ids_and_lists_drop_nulls():
    mapping = load_mapping("""
plugin: github
source: deployment
outputs:
  - kind: deployment
    event_type: delivery
    fields:
      external_id: deployment.id
      occurred_at: deployment.created_at
      title: deployment.environment
      resource_ids: "[deployment.environment, deployment.missing]"
""")
    (event,) = run(mapping, [{"deployment": {"id": 42, "created_at": "2024-01-01T00:00:00Z", "environment": "prod"}}]).events
    assert event.integration_context.external_id == "42" and event.resource_ids == ["prod"]
