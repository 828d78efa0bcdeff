"""The compiled SQL engine on the shipped mappings, the fast file path, explain, and the regex rewrite."""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.mapping import ENGINES, PythonEngine, get_engine, load_mapping
from integrations.mapping._sql import SqlEngine, explain, plan_mapping
from integrations.mapping._sql_compile import sql_str
from integrations.mapping._sql_file import map_file, map_files
from integrations.mapping._sql_regex import Unsupported, to_re2
from integrations.mapping._sql_store import rows_query
from integrations.pipeline import map_items, store_result
from integrations.records import iter_records
from integrations.store import EventStore
from tests.mapping.conftest import PUSH, both_paths, push_record, store_dump

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = sorted(glob.glob(str(ROOT / "mappings" / "*" / "*.yaml")))


def _key(result):
    return ([e.to_json_dict() for e in result.events],
            [(r.record_index, r.field, r.reason, r.output, r.expression, json.dumps(r.record, sort_keys=True))
             for r in result.rejections],
            result.summary())


def _inputs(mapping) -> list[Path]:
    samples = glob.glob(str(ROOT / "data" / "samples" / "*" / mapping.plugin / f"{mapping.source}.jsonl"))
    examples = glob.glob(str(ROOT / "mappings" / mapping.plugin / "examples" / mapping.source / "*.input.json"))
    return [Path(p) for p in sorted(samples + examples)]


@pytest.fixture(scope="module")
def engine() -> SqlEngine:
    return SqlEngine(python_below=0)


@pytest.mark.parametrize("mapping_file", MAPPINGS, ids=lambda p: "/".join(Path(p).parts[-2:]))
def test_shipped_mapping_same_results_on_samples_and_examples(mapping_file, engine):
    """Every sample file and golden example input gives identical MapResults under both engines
    (all inputs of a mapping in one call, so DuckDB plans each output once)."""
    mapping = load_mapping(mapping_file)
    inputs = _inputs(mapping)
    if not inputs:
        pytest.skip(f"no samples or examples for {mapping_file}")
    items = [(i, record) for i, record in enumerate(r for path in inputs for _pos, r in iter_records(path))]
    expected = map_items(PythonEngine(), mapping, items, "acme")
    actual = map_items(engine, mapping, items, "acme")
    assert _key(actual) == _key(expected)


@pytest.mark.parametrize("mapping_file", MAPPINGS, ids=lambda p: "/".join(Path(p).parts[-2:]))
def test_map_file_writes_the_store_the_python_path_writes(mapping_file, tmp_path):
    """`map_file` (SQL end to end) leaves the store exactly as the Python engine's pipeline does."""
    mapping = load_mapping(mapping_file)
    samples = [p for p in _inputs(mapping) if p.suffix == ".jsonl"]
    if not samples:
        pytest.skip(f"no samples for {mapping_file}")
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(p.read_text(encoding="utf-8") for p in samples), encoding="utf-8")
    both_paths(mapping, path, tmp_path)


def test_map_file_reads_bad_lines_like_the_python_path(tmp_path):
    """Invalid JSON, JSON that DuckDB alone accepts, blank lines and rejected records: same store, same counts."""
    lines = [json.dumps(push_record(2)), "", "{not json", '{"commits": [1,],}', json.dumps(push_record(1)),
             json.dumps({"commits": [{"id": "x"}]}), json.dumps({"ref": "r"}), '{"a": NaN}']
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected, _report = both_paths(load_mapping(PUSH), path, tmp_path, segment_records=3)
    assert (expected.read, expected.mapped, expected.filtered, expected.rejected) == (7, 2, 2, 3)


def test_line_separators_inside_json_strings_do_not_break_a_record(tmp_path):
    """JSON allows U+2028, U+2029 and U+0085 raw inside strings; JSON Lines breaks lines at newlines only."""
    record = push_record(1)
    record["commits"][0]["message"] = "first\u2028second\u2029third\x85fourth"
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\r\n\n" + json.dumps(push_record(2)) + "\n",
                    encoding="utf-8")
    assert [i for i, _r in iter_records(path)] == [0, 1]
    expected, _report = both_paths(load_mapping(PUSH), path, tmp_path)
    assert (expected.read, expected.rejected, expected.events) == (2, 0, 3)


@pytest.mark.parametrize("bad_line", [3, 2500], ids=["in-the-first-64kb", "read-inside-duckdb"])
def test_map_file_refuses_a_file_that_is_not_utf8_as_the_python_path_does(tmp_path, bad_line):
    from integrations.errors import UsageError

    path = tmp_path / "in.jsonl"
    lines = [json.dumps(push_record(1)).encode()] * 3000
    lines[bad_line] = b'{"ref": "\xff"}'
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(UsageError, match="not UTF-8") as python_error:
        list(iter_records(path))
    with pytest.raises(UsageError, match="not UTF-8") as sql_error:
        map_file(load_mapping(PUSH), path, tenant_id="acme", store=EventStore(tmp_path / "s.duckdb"))
    assert sql_error.value.file == python_error.value.file == str(path)


def test_map_file_scans_each_segment_once_per_output(tmp_path):
    """Two outputs over segments of 2 records: the second output reads the same lines again, bad ones too."""
    text = PUSH.replace("outputs:\n", "outputs:\n  - kind: push\n    event_type: delivery\n    fields:\n"
                        "      external_id: ref\n      occurred_at: \"'2024-01-01T00:00:00Z'\"\n      title: ref\n")
    lines = [json.dumps(push_record(2, ref=f"refs/heads/b{i}")) for i in range(5)]
    lines[2:2] = ["", "{not json", '{"commits": [1,],}']
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _expected, report = both_paths(load_mapping(text), path, tmp_path, segment_records=2)
    assert report.segments == 4 and report.events == 15
    assert "line 4 is not valid JSON" in report.rejections[0].reason


def _pushes(n: int) -> list[dict]:
    """n pushes of 2 commits each, every commit id its own."""
    records = [push_record(2, ref=f"refs/heads/b{i}") for i in range(n)]
    for i, record in enumerate(records):
        for k, commit in enumerate(record["commits"]):
            commit["id"] = f"{2 * i + k:040x}"
    return records


def test_map_files_merges_in_file_order_while_the_next_is_mapped(tmp_path):
    """Groups merge on a writer thread in the order they were made: a later file's changed event wins,
    as when the Python pipeline ingests the files one after the other; one complete report per file."""
    mapping = load_mapping(PUSH)
    first = _pushes(6)
    second = json.loads(json.dumps(first[:3]))
    for record in second:
        record["commits"][0]["message"] = "amended"
    paths = []
    for name, records in (("a.jsonl", first), ("b.jsonl", second)):
        paths.append(tmp_path / name)
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    python_store, sql_store = EventStore(tmp_path / "p.duckdb"), EventStore(tmp_path / "s.duckdb")
    expected = []
    for path in paths:
        result = map_items(PythonEngine(), mapping, iter_records(path), "acme")
        expected.append(store_result(python_store, tenant_id="acme", plugin="github", source="push", result=result,
                                     precedence=mapping.spec.precedence))
    reports = map_files([(mapping, p) for p in paths], tenant_id="acme", store=sql_store, segment_records=2,
                        flush_events=1)
    assert store_dump(sql_store) == store_dump(python_store)
    counts = ("read", "mapped", "events", "inserted", "updated", "unchanged")
    assert [[getattr(r, k) for k in counts] for r in reports] == [[getattr(e, k) for k in counts] for e in expected]
    assert [r.flushes for r in reports] == [3, 2]


def test_map_files_stops_at_a_bad_file_and_keeps_what_was_merged(tmp_path):
    """A file that is not UTF-8 stops the call with its own error; the groups of the files before it land."""
    from integrations.errors import UsageError

    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in _pushes(3)), encoding="utf-8")
    bad.write_bytes(b'{"ref": "\xff"}\n')
    store = EventStore(tmp_path / "s.duckdb")
    with pytest.raises(UsageError, match="not UTF-8"):
        map_files([(load_mapping(PUSH), good), (load_mapping(PUSH), bad)], tenant_id="acme", store=store)
    assert store.count_events("acme") == 6


def test_map_files_raises_a_failed_merge(tmp_path):
    """A merge fails on the writer thread: the caller gets that error, not a report."""

    class Broken(EventStore):
        def attached(self, conn):
            raise RuntimeError("store is gone")

    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _pushes(2)), encoding="utf-8")
    with pytest.raises(RuntimeError, match="store is gone"):
        map_files([(load_mapping(PUSH), path)], tenant_id="acme", store=Broken(tmp_path / "s.duckdb"))


def test_sql_engine_is_registered_and_the_default():
    assert ENGINES["sql"] is SqlEngine
    assert isinstance(get_engine("auto"), SqlEngine)
    assert isinstance(get_engine("python"), PythonEngine)


def test_small_inputs_go_through_python_unless_forced():
    """Planning a query costs more than mapping a handful of records in Python: same result either way."""
    mapping = load_mapping(PUSH)
    small = SqlEngine()
    small.map(mapping, [push_record(1)], tenant_id="t")
    assert small.sql_runs == 0
    forced = SqlEngine(python_below=0)
    forced.map(mapping, [push_record(1)], tenant_id="t")
    assert forced.sql_runs == 1


def test_start_index_and_delegated_rejections_match(engine):
    mapping = load_mapping(PUSH)
    records = [push_record(2), {"commits": [{"id": "a", "timestamp": "not a time"}]}, push_record(0), 5, None]
    expected = PythonEngine().map(mapping, records, tenant_id="t", start_index=40)
    actual = engine.map(mapping, records, tenant_id="t", start_index=40)
    assert _key(actual) == _key(expected)
    assert [r.record_index for r in actual.rejections] == [41]


def test_explain_names_compiled_and_fallback_fields():
    rows = explain(load_mapping(ROOT / "mappings" / "github" / "push.yaml"))
    assert rows and all(status == "compiled" for _o, _f, status, _r in rows)
    assert ("commit", "external_id", "compiled", "") in rows
    text = PUSH.replace("external_id: item.id", "external_id: \"item.id || sort_by(record.x, &y)[0].y\"")
    rows = explain(load_mapping(text))
    (row,) = [r for r in rows if r[1] == "external_id"]
    assert row[2] == "fallback" and "sort_by" in row[3]
    # a fallback field still gives the Python engine's result
    records = [push_record(2)]
    assert _key(SqlEngine(python_below=0).map(load_mapping(text), records, tenant_id="t")) == _key(
        PythonEngine().map(load_mapping(text), records, tenant_id="t"))


def test_python_runs_only_where_the_compiled_head_of_an_or_does_not_decide(monkeypatch):
    """`item.id || sort_by(...)`: SQL decides the records with an id; Python sees only the others."""
    from integrations.mapping import _sql

    calls = []

    class Counting(type(_sql._INTERPRETER)):
        def visit(self, node, value):
            if any(node is root for root in _sql._FALLBACK_NODES.values()):  # not the recursive visits
                calls.append(value)
            return super().visit(node, value)

    monkeypatch.setattr(_sql, "_INTERPRETER", Counting(_sql.OPTIONS))
    text = PUSH.replace("external_id: item.id", "external_id: \"item.id || sort_by(record.x, &y)[0].y\"")
    mapping = load_mapping(text)
    (row,) = [r for r in explain(mapping) if r[1] == "external_id"]
    assert row[2] == "fallback" and "only where the compiled head does not decide" in row[3]
    records = [push_record(2) for _ in range(40)]
    without_id = push_record(1)
    for commit in without_id["commits"]:
        commit.pop("id")
    without_id["x"] = [{"y": "b"}, {"y": "a"}]
    records.append(without_id)
    sql = SqlEngine(python_below=0).map(mapping, records, tenant_id="t")
    assert _key(sql) == _key(PythonEngine().map(mapping, records, tenant_id="t"))
    assert 0 < len(calls) <= len(without_id["commits"])  # one call per commit without an id, none for the rest


@pytest.mark.parametrize("pattern", [
    r"^refs/heads/(.+)$", r"(?i)task timed out", r"^\s*([^\r\n]{0,200})", r"(?i)^(.+?)[-_.](?:5xx|errors?)(?:[-_.]|$)",
    r"([0-9]+)$", r"x$", r"(a)|(b)", r"\bword\b", r"[\w.]+@[\w.]+", r"\d{2,3}", r"(?:^|[\s\[\]])(error)(?:$|[\s\]])",
    r"(\d{2,3})", r"^\w+(\d{0,2})", r"(?:x|(\w{1,4}))", r"a(b{0,2})", r"(.{0,3})", r"(?i)(E{2})", r"^\s*(\S{1,5})",
])
@pytest.mark.parametrize("subject", ["refs/heads/main", "refs/heads/main\n", "Task Timed Out\n", "  first line\nsecond",
                                     "api-5xx", "api_errors\n", "abc123", "b", "x\n", "a word here", "mona@example.com",
                                     "[error] 42\n", "", "\n", "\x0b tab\x1f", "abbbbc 12345678", "eEe"])
def test_regex_rewrite_matches_python_on_ascii(pattern, subject):
    """regex_extract() under RE2 gives Python's answer (or the guard sends the value to Python)."""
    re2 = to_re2(pattern)
    if re2.no_final_newline and subject.endswith("\n"):
        return
    match = re.search(pattern, subject)
    expected = None if match is None else (match.group(1) if match.groups() else match.group(0))
    raw, matched = _run_re2(re2, subject)
    actual = raw if raw != "" else ("" if matched else None)
    if expected is None and re2.group == 1 and not re2.group_always_set and matched:
        return  # the engine's guard hands this value to Python
    if raw == "" and matched and not re2.group_always_set:
        return
    assert actual == expected


def _run_re2(re2, subject: str) -> tuple[str | None, bool | None]:
    """DuckDB's regexp_extract() (cut to `take` characters, as the compiler does) and regexp_matches()."""
    conn = duckdb.connect()
    take = re2.take if re2.take is not None else 2**31 - 1
    return conn.execute("SELECT left(regexp_extract(?, ?, ?), ?), regexp_matches(?, ?)",
                        [subject, re2.pattern, re2.group, take, subject, re2.pattern]).fetchall()[0]


_ASCII_RUNS = st.text(alphabet="ab \n\r1", max_size=12)


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from(["", "^", "a", "^\\s*", "(?:a|b)", "b?", "(?i)A"]),
       char=st.sampled_from(["a", "[^\\r\\n]", ".", "[ab]", "\\d", "\\S"]),
       bounds=st.tuples(st.integers(0, 3), st.integers(0, 4)), subject=_ASCII_RUNS)
def test_trailing_bounded_repeat_cut_to_take_matches_python(prefix, char, bounds, subject):
    """`prefix(C{lo,hi})` runs in RE2 as `prefix(C{lo,})` cut to hi characters, with Python's result."""
    lo, hi = min(bounds), max(bounds)
    pattern = f"{prefix}({char}{{{lo},{hi}}})"
    re2 = to_re2(pattern)
    assert re2.take == hi and f",{hi}}}" not in re2.pattern
    match = re.search(pattern, subject)
    raw, matched = _run_re2(re2, subject)
    assert bool(matched) == (match is not None)
    assert raw == (match.group(1) if match else "")


@pytest.mark.parametrize("pattern", [
    r"^refs/heads/(.+)$", r"(?i)task timed out", r"^\s*([^\r\n]{0,200})", r"([0-9]*)$", r"x?", r"(a|)b", r"(a)|(b)",
    r"(?:^|[\s\[\]])(error)(?:$|[\s\]])", r"\b", r"(\d{0,3})x",
])
@pytest.mark.parametrize("subject", ["refs/heads/main", "Task Timed Out\n", "", "\n", "b", "x", "abc", "[error] 42", "7x"])
def test_regex_never_empty_means_python_never_returns_empty(pattern, subject):
    """With `never_empty` the compiled regex_extract() reads DuckDB's '' as "no match" without a second pass."""
    re2 = to_re2(pattern)
    match = re.search(pattern, subject)
    result = None if match is None else (match.group(1) if match.groups() else match.group(0))
    assert not (re2.never_empty and result == "")


def test_regex_extract_without_second_pass_gives_python_results():
    """A never-empty pattern compiles to one regexp_extract(); the events equal the Python engine's."""
    short = "\n      attributes.short: \"regex_extract(item.id, '^([0-9a-f]{3})')\""
    text = PUSH.replace("attributes.sha: item.id", "attributes.sha: item.id" + short)
    mapping = load_mapping(text)
    (plan,) = plan_mapping(mapping)
    sql = rows_query(plan, 0, "_lines", "t", "github", "push")
    pattern = sql_str(to_re2("^([0-9a-f]{3})").pattern)
    assert f"{pattern}, 1)" in sql and f"{pattern})" not in sql  # extracted, never matched again
    records = [push_record(2) for _ in range(5)]
    records[0]["commits"][0]["id"] = "zz-not-hex"
    assert _key(SqlEngine(python_below=0).map(mapping, records, tenant_id="t")) == \
        _key(PythonEngine().map(mapping, records, tenant_id="t"))


def test_content_hashes_from_arrow_buffers_equal_duckdbs_sha256():
    """`sha256hex` reads the Arrow offsets itself: sliced and chunked arrays, NULLs and non-ASCII text."""
    import pyarrow as pa

    from integrations.mapping._sql import connect
    from integrations.mapping._sql_store import install_store_macros

    texts = ["", "abc", None, "é✓ \u2028", '{"a":1}' * 500]
    conn = connect()
    install_store_macros(conn)
    arrow = pa.chunked_array([pa.array(["x"] + texts)[1:], pa.array(texts[::-1])])
    conn.register("t", pa.table({"s": arrow}))
    rows = conn.execute("SELECT sha256hex(s) IS NOT DISTINCT FROM sha256(s) FROM t").fetchall()
    assert rows == [(True,)] * (2 * len(texts))


@pytest.mark.parametrize("pattern", [r"(?<=a)b", r"(a)\1", r"(?m)^x", r"(?:(a))+", r"a{2000}", r"(?i:x)"])
def test_regex_rewrite_refuses_what_re2_reads_differently(pattern):
    with pytest.raises(Unsupported):
        to_re2(pattern)
