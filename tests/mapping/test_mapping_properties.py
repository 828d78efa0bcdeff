"""Property tests of the mapping engine (the seed design's Property 4, and bad input)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from integrations.events import CanonicalEvent, event_id_for
from integrations.mapping import PythonEngine, load_mapping
from integrations.pipeline import ingest
from integrations.records import iter_records
from integrations.store import EventStore, canonical_json
from tests.mapping.conftest import PUSH

MAPPING = load_mapping(PUSH)
EVENT_SCHEMA = Draft202012Validator(CanonicalEvent.model_json_schema(mode="serialization"))

timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                          timezones=st.sampled_from([timezone.utc, None])).map(
    lambda d: d.isoformat() if d.tzinfo else d.isoformat() + "Z")
json_scalars = st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
commits = st.fixed_dictionaries({
    "id": st.text("0123456789abcdef", min_size=7, max_size=40),
    "timestamp": timestamps,
    "message": st.text(max_size=60),
    "url": st.just("https://github.com/o/r/commit/x") | st.none(),
    "distinct": st.booleans(),
    "author": st.fixed_dictionaries({"name": st.text(max_size=10)}),
}, optional={"extra": json_values})
push_records = st.fixed_dictionaries({
    "repository": st.fixed_dictionaries({"full_name": st.from_regex(r"[a-z]{1,8}/[a-z\-]{1,12}", fullmatch=True)}),
    "commits": st.lists(commits, max_size=5),
}, optional={"ref": st.text(max_size=20), "noise": json_values})


@given(records=st.lists(push_records, max_size=6), tenant=st.from_regex(r"[a-z][a-z0-9\-]{0,10}", fullmatch=True))
@settings(max_examples=150, deadline=None)
def test_property_4_consistent_data_transformation(records, tenant):
    """Feature: integrations, Property 4: Consistent Data Transformation — any record a mapping accepts
    yields schema-valid events that keep external_id and original_timestamp from the record; mapping
    is deterministic and event_id is stable across runs."""
    first = PythonEngine().map(MAPPING, records, tenant_id=tenant)
    second = PythonEngine().map(MAPPING, json.loads(json.dumps(records)), tenant_id=tenant)
    assert [e.to_json_dict() for e in first.events] == [e.to_json_dict() for e in second.events]
    assert first.read == first.mapped + first.filtered + first.rejected == len(records)
    assert first.rejected == 0
    expected = [c for r in records for c in r["commits"]]
    assert len(first.events) == len(expected)
    for event, commit in zip(first.events, expected):
        data = event.to_json_dict()
        EVENT_SCHEMA.validate(data)
        CanonicalEvent.model_validate(data)
        ctx = event.integration_context
        assert ctx.external_id == commit["id"]
        assert ctx.original_timestamp == commit["timestamp"]
        assert ctx.source_integration == "github"
        assert event.event_id == event_id_for(tenant, "github", "commit", commit["id"])
        assert event.occurred_at.tzinfo is not None and event.occurred_at.utcoffset().total_seconds() == 0


lines = st.one_of(
    push_records.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t),
    push_records.map(lambda r: json.dumps(r)[:-3]),
)


@given(batch=st.lists(lines, min_size=1, max_size=12))
@settings(max_examples=100, deadline=None)
def test_bad_input_never_stops_the_batch(batch, tmp_path_factory):
    """Feature: integrations, Property 5: Comprehensive Error Handling — random malformed records are
    rejected one by one, never crash the run, and are all in the dead-letter store."""
    folder = tmp_path_factory.mktemp("bad")
    path = folder / "push.jsonl"
    path.write_text("\n".join(line for line in batch if line.strip()) + "\n", encoding="utf-8")
    store = EventStore(folder / "store.duckdb")
    items = list(iter_records(path))
    report = ingest(store, tenant_id="demo", mapping=MAPPING, engine=PythonEngine(), items=items)
    assert report.read == len(items) == report.mapped + report.filtered + report.rejected
    stored = store.list_dead_letters("demo")
    assert sum(1 for _ in stored) <= report.rejected
    kept = {canonical_json(row["record"]) for row in stored}
    from integrations.pipeline import map_items

    result = map_items(PythonEngine(), MAPPING, items, "demo")
    assert {canonical_json(r.record) for r in result.rejections} == kept
    assert store.count_events("demo") == len({e.event_id for e in result.events})
