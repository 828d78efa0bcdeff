"""The preview API: pages and notebooks get events, rejections, coverage, traces, changes as DataFrames."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from integrations.errors import ConfigError, MappingError, UsageError
from integrations.preview import SampleSet, parse_records, preview, save, validate
from integrations.preview._wholeset import _with_engine, read_projection, whole_set_figures
from integrations.store import EventStore
from integrations.store._tenants import list_audit
from integrations.tenants import TenantAdmin

ROOT = Path(__file__).resolve().parents[2]
PUSH = ROOT / "mappings" / "github" / "push.yaml"

MAPPING = """plugin: shop
source: orders
outputs:
  - kind: order
    event_type: system
    when: "status != 'draft'"
    fields:
      external_id: id
      occurred_at: at
      title: "format('Order {}', id)"
      attributes.customer: customer.name
      attributes.total: total
"""
RECORDS = [
    {"id": "o1", "at": "2024-05-01T10:00:00Z", "status": "paid", "customer": {"name": "Ada"}, "total": 10},
    {"id": "o2", "at": "2024-05-01T11:00:00Z", "status": "paid", "customer": {}, "total": 12},
    {"id": "o3", "at": "2024-05-01T12:00:00Z", "status": "draft", "customer": {"name": "Bo"}},
    {"id": "o4", "at": None, "status": "paid", "customer": {"name": "Cy"}, "total": 7},
    {"id": "o5", "at": "2024-05-01T13:00:00Z", "status": "paid", "customer": "Dee", "total": 1},
]


@pytest.fixture
def samples() -> SampleSet:
    s = SampleSet()
    s.load("t1", "shop", "orders", RECORDS)
    return s


def test_page_events_rejections_and_filtered_are_tied_to_their_records(samples):
    result = preview(MAPPING, samples, tenant="t1", saved=False)
    assert result.valid
    events = result.events
    assert list(events["record_index"]) == [0, 1, 4]
    assert list(events["attributes.customer"].fillna("-")) == ["Ada", "-", "-"]
    assert list(events["attributes.total"]) == [10, 12, 1]
    assert result.rejections.to_dict("records") == [{
        "record_index": 3, "output": "order", "field": "occurred_at", "expression": None,
        "reason": "expected an ISO-8601 timestamp string, got null"}]
    assert list(result.filtered["record_index"]) == [2]
    assert "when `status != 'draft'` is falsy" in result.filtered.iloc[0]["reason"]


def test_coverage_is_the_share_of_the_outputs_events_that_set_the_field(samples):
    result = preview(MAPPING, samples, tenant="t1", saved=False)
    coverage = result.coverage.set_index("field")
    assert coverage.loc["attributes.customer", "set"] == 1
    assert coverage.loc["attributes.customer", "events"] == 3
    assert coverage.loc["attributes.customer", "share"] == pytest.approx(1 / 3)
    assert coverage.loc["title", "share"] == 1.0
    counts = {(r["by"], r["value"]): r["count"] for r in result.counts.to_dict("records")}
    assert counts[("outcome", "read")] == 5
    assert counts[("outcome", "mapped")] == 3
    assert counts[("outcome", "filtered")] == 1
    assert counts[("outcome", "rejected")] == 1
    assert counts[("kind", "order")] == 3


def test_trace_says_what_each_field_gave_or_why_it_is_null(samples):
    result = preview(MAPPING, samples, tenant="t1", saved=False)
    trace = result.trace(1).set_index("field")
    assert trace.loc["attributes.customer", "why"] == "key 'name' missing at record.customer.name"
    assert trace.loc["attributes.customer", "value"] == "null"
    assert trace.loc["title", "value"] == '"Order o2"'
    assert trace.loc["title", "why"] == ""
    assert "is a string, not an object" in result.trace(4).set_index("field").loc["attributes.customer", "why"]
    when = result.trace(2).set_index("field").loc["when"]
    assert "falsy" in when["why"]


def test_trace_inside_for_each_names_item_and_record_paths():
    samples = SampleSet()
    samples.load_samples("demo", "github", "push")
    text = PUSH.read_text().replace("      attributes.pusher: record.pusher.name",
                                    "      attributes.pusher: record.pusher.nickname")
    result = preview(text, samples, tenant="demo", plugin="github", source="push", saved=PUSH)
    trace = result.trace(0)
    row = trace[trace["field"] == "attributes.pusher"].iloc[0]
    assert row["why"] == "key 'nickname' missing at record.pusher.nickname"
    assert row["event"] == 0


def test_changed_lists_records_whose_events_differ_from_the_saved_mapping(samples):
    edited = MAPPING.replace("attributes.total: total", "attributes.total: total\n      attributes.vip: customer.name == 'Ada'")
    result = preview(edited, samples, tenant="t1", saved=MAPPING)
    changed = result.changed
    assert list(changed["record_index"]) == [0, 1, 4]  # o3 is filtered and o4 rejected under both
    assert changed.iloc[0]["difference"] == "attributes.vip added"
    same = preview(MAPPING, samples, tenant="t1", saved=MAPPING)
    assert same.changed.empty and same.figures.compared


def test_validation_errors_carry_line_and_column():
    text = MAPPING.replace("title: \"format('Order {}', id)\"", "title: \"format('Order {}', id\"")
    issues = validate(text)
    assert len(issues) == 1
    assert (issues[0].line, issues[0].field) == (10, "title")
    assert issues[0].col and issues[0].col > 14
    assert str(issues[0]).startswith(f"line 10:{issues[0].col}: field 'title'")
    unknown = validate(MAPPING.replace("format(", "fromat("))
    assert "did you mean 'format'" in unknown[0].message
    result = preview(text, [RECORDS[0]], tenant="t1", plugin="shop", source="orders", saved=False)
    assert not result.valid and result.events.empty and result.mapping is None


def _tenant(tmp_path: Path, actor: str, role: str) -> tuple[EventStore, Path]:
    store = EventStore(tmp_path / "store.duckdb")
    admin = TenantAdmin(store, tmp_path / "tenants")
    admin.create("t1", "boss")
    admin.set("t1", "boss", f"roles.{actor}", role)
    return store, tmp_path / "tenants"


def test_save_writes_only_a_valid_mapping_and_audits_who_saved_what(tmp_path):
    store, tenants = _tenant(tmp_path, "ana", "analyst")
    target = tmp_path / "mappings" / "shop" / "orders.yaml"
    with pytest.raises(MappingError, match="not saved"):
        save(target, MAPPING.replace("id\n", "id(\n", 1), tenant="t1", actor="ana", store=store, tenants_root=tenants)
    assert not target.exists()
    result = save(target, MAPPING, tenant="t1", actor="ana", store=store, tenants_root=tenants)
    assert result.changed and target.read_text() == MAPPING
    edited = MAPPING.replace("attributes.total: total", "attributes.total: total\n      attributes.paid: status")
    save(target, edited, tenant="t1", actor="ana", store=store, tenants_root=tenants)
    saves = [a for a in list_audit(store, "t1") if a["action"] == "mapping.save"]
    assert [a["actor"] for a in saves] == ["ana", "ana"]
    assert all(a["target"] == str(target) for a in saves)
    assert any("+      attributes.paid: status" in a["diff"]["diff"] for a in saves)
    assert not save(target, edited, tenant="t1", actor="ana", store=store, tenants_root=tenants).changed


def test_save_needs_the_mappings_write_permission_and_the_right_file(tmp_path):
    store, tenants = _tenant(tmp_path, "vic", "viewer")
    target = tmp_path / "mappings" / "shop" / "orders.yaml"
    with pytest.raises(ConfigError, match="mappings.write"):
        save(target, MAPPING, tenant="t1", actor="vic", store=store, tenants_root=tenants)
    assert not target.exists()
    with pytest.raises(MappingError, match="is for shop/orders"):
        save(tmp_path / "mappings" / "shop" / "other.yaml", MAPPING, tenant="t1", actor="boss", store=store,
             tenants_root=tenants)


def test_uploads_are_json_or_json_lines():
    assert parse_records(b'{"a": 1}') == [{"a": 1}]
    assert parse_records('[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]
    assert parse_records('{"a": 1}\n\n{"a": 2}\n') == [{"a": 1}, {"a": 2}]
    with pytest.raises(UsageError, match="line 2 is not JSON"):
        parse_records('{"a": 1}\n{oops\n', "up.jsonl")


def test_samples_search_pages_and_selected_first(samples, tmp_path):
    assert samples.count("t1", "shop", "orders") == 5
    assert list(samples.search("t1", "shop", "orders", "ada")["record_index"]) == [0]
    page = samples.page("t1", "shop", "orders", selected=[3, 1], limit=3)
    assert [i for i, _ in page] == [3, 1, 0]
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text('{"id": 1}\nnot json\n')
    assert samples.load_file(jsonl, "t1", "shop", "x") == 2
    assert samples.records("t1", "shop", "x")[1][1] == {"unparsed_line": "not json"}


def test_results_have_readable_html_for_notebooks(samples):
    result = preview(MAPPING, samples, tenant="t1", saved=False)
    html = result._repr_html_()
    assert "<table" in html and "coverage" in html and "3 mapped" in html
    assert isinstance(result.events, pd.DataFrame)


def test_unmapped_lists_source_fields_no_expression_reads(samples):
    result = preview(MAPPING, samples, tenant="t1", saved=False)
    assert "status" not in set(result.unmapped["path"])  # read by `when`
    assert "customer.name" not in set(result.unmapped["path"])
    more = SampleSet()
    more.load("t1", "shop", "orders", [dict(RECORDS[0], note="x")])
    assert list(preview(MAPPING, more, tenant="t1", saved=False).unmapped["path"]) == ["note"]


@pytest.mark.parametrize("plugin,source", [(p.parent.name, p.stem) for p in sorted((ROOT / "mappings").glob("*/*.yaml"))])
def test_compiled_whole_set_figures_equal_the_reference_engines(plugin, source):
    """The SQL path (slim records, cached rows, Python for what SQL cannot vouch for) gives exactly the
    reference engine's counts, coverage and changed records, on every shipped mapping and sample set."""
    from integrations.preview._validate import compile_text

    samples = SampleSet()
    keys = []
    for tenant in ("demo", "acme"):
        if samples.ensure(tenant, plugin, source):
            keys.append((tenant, plugin, source))
    if not keys:
        pytest.skip(f"no samples for {plugin}/{source}")
    saved, _ = compile_text((ROOT / "mappings" / plugin / f"{source}.yaml").read_text())
    edited, _ = compile_text(saved.text)
    for key in samples.keys():
        sql = whole_set_figures(samples, key, edited, tenant_id=key.tenant, saved=saved, python_budget=None)
        ref = _with_engine(samples, key, edited, key.tenant, saved)

        def shape(f):
            return (f.records, f.mapped, f.filtered, f.rejected, f.rejection_reasons, f.changed,
                    [(o.name, o.events, [(c.field, c.set) for c in o.fields]) for o in f.outputs])

        assert shape(sql) == shape(ref), key


def test_whole_set_changed_matches_the_reference_engine_after_an_edit():
    samples = SampleSet()
    samples.load_samples("demo", "github", "push")
    saved_text = PUSH.read_text()
    from integrations.preview._validate import compile_text

    saved, _ = compile_text(saved_text)
    # Each edit reads paths the earlier ones did not: the slim copy widens (a whole object above a
    # path it kept, a new leaf beside one), and must still give the reference engine's figures.
    for edit in ("      attributes.pusher: record.pusher.email", "      attributes.pusher: record.pusher.name\n"
                 "      attributes.first_file: item.modified[0]", "      attributes.pusher: length(record.pusher)",
                 "      attributes.pusher: record.head_commit.author.email || record.sender.login"):
        edited, issues = compile_text(saved_text.replace("      attributes.pusher: record.pusher.name", edit))
        assert not issues
        key = samples.keys()[0]
        sql = whole_set_figures(samples, key, edited, tenant_id="demo", saved=saved, python_budget=None)
        ref = _with_engine(samples, key, edited, "demo", saved)
        assert sql.engine == "sql"
        assert sql.changed == ref.changed and sql.changed
        assert [(c.field, c.set) for c in sql.outputs[0].fields] == [(c.field, c.set) for c in ref.outputs[0].fields]
    # A whole object whose one key the slim copy kept: its value must come from the full record.
    key = samples.keys()[0]
    owner_keys = len(samples.record(*key, 0)["repository"]["owner"])  # the mapping reads two of them
    assert owner_keys > 2
    literal, issues = compile_text(saved_text.replace("      attributes.pusher: record.pusher.name",
                                                      f'      attributes.pusher: "`{owner_keys}`"'))
    whole, more = compile_text(saved_text.replace("      attributes.pusher: record.pusher.name",
                                                  "      attributes.pusher: length(record.repository.owner)"))
    assert not issues and not more
    sql = whole_set_figures(samples, key, whole, tenant_id="demo", saved=literal, python_budget=None)
    ref = _with_engine(samples, key, whole, "demo", literal)
    assert sql.changed == ref.changed and len(ref.changed) < ref.records and sql.compared


def test_the_slim_projection_keeps_what_expressions_read():
    from integrations.preview._validate import compile_text

    mapping, _ = compile_text(PUSH.read_text())
    paths = read_projection([mapping])
    assert ("commits",) in paths and ("pusher", "name") in paths and ("repository", "owner", "login") in paths
    whole, _ = compile_text(MAPPING.replace("attributes.total: total", "attributes.total: to_string(@)"))
    assert read_projection([whole]) is None


def test_a_record_list_gets_its_own_sample_set():
    result = preview(MAPPING, RECORDS, tenant="t1", saved=False)
    assert result.figures.records == 5 and len(result.events) == 3
    assert json.loads(result.trace(0).set_index("field").loc["attributes.total", "value"]) == 10


def test_the_whole_set_of_the_repository_is_never_touched(tmp_path):
    copy = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", copy)
    before = PUSH.read_text()
    preview(copy / "github" / "push.yaml", SampleSet(), tenant="demo")
    assert PUSH.read_text() == before


def test_the_preview_api_is_pinned():
    import integrations.preview as api

    assert sorted(api.__all__) == sorted(n for n in dir(api) if not n.startswith("_") and n != "annotations"
                                         and not isinstance(getattr(api, n), type(api)))
    assert {"SampleSet", "preview", "validate", "save", "PreviewResult", "evaluate"} <= set(api.__all__)
