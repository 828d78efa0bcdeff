"""The compiled SQL engine against the Python engine on generated expressions and records.

Hypothesis writes small mappings whose expressions come from the compiled subset (paths,
sub-expressions, `||`, `&&`, `!`, comparisons, literals, projections, multi-selects and the
functions with SQL equivalents) and records with missing keys, nulls, empty strings and lists,
numbers, nested objects and text the regexes must read like Python does; both engines must give
the same MapResult: events field for field, rejections (index, field, reason), counts.
"""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from integrations.mapping import PythonEngine, compile_mapping_text
from integrations.mapping._sql import SqlEngine

KEYS = ["a", "b", "id", "name", "items", "ts"]
WORDS = ["", "x", "error", "WARN", "Error: boom", "a,b", "main", "refs/heads/main", "2024-05-01T12:00:00Z",
         "2024-05-01T12:00:00.120+02:00", "12", "line\n", "tab\there", "é", "[ERROR] x", " spaced ", "null"]
PATTERNS = [r"^([a-z]+)", r"(?i)err(or)?", r"([0-9]+)$", r"\s+(\w+)", r"x", r"^$", r"(a)|(b)",
            r"^refs/heads/(.+)$", r"(?i)(?:^|[\s\[\]])(error|warn)(?:$|[\s\]])", r"\d{2}", r"(?:a|$)"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-(2**70), 2**70),
    st.sampled_from([0.5, -1.25, 100.0, 1e-05, 2.0, 1e22]), st.sampled_from(WORDS),
    st.text(alphabet="abcé \n,", max_size=4),
)


def _json(leaves):
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)), max_leaves=8)


records = st.dictionaries(st.sampled_from(KEYS), _json(scalars), max_size=6)


def _lit_str(text: str) -> str:
    return "'" + text + "'"


literals = st.one_of(
    st.sampled_from(["x", "error", "", "main", "a"]).map(_lit_str),
    st.sampled_from(["`1`", "`0`", "`true`", "`false`", "`null`", "`[]`", '`"x"`', "`2.5`", '`{"k": 1}`']),
)

steps = st.lists(st.one_of(st.sampled_from(KEYS).map(lambda k: "." + k), st.sampled_from(["[0]", "[-1]"])),
                 max_size=2)
paths = st.tuples(st.sampled_from(KEYS), steps).map(lambda t: t[0] + "".join(t[1]))
# inside for_each the scope is {item, record}
pair_paths = st.one_of(
    st.tuples(st.sampled_from(["item", "record"]), steps).map(lambda t: t[0] + "".join(t[1])),
    st.tuples(st.sampled_from(["item.", "record."]), paths).map("".join),
    st.sampled_from(["item", "@", "a"]))


def _expr(depth: int, paths):
    if depth <= 0:
        return st.one_of(paths, literals)
    sub = _expr(depth - 1, paths)
    return st.one_of(
        paths, literals,
        st.tuples(sub, sub).map(lambda t: f"({t[0]} || {t[1]})"),
        st.tuples(sub, sub).map(lambda t: f"({t[0]} && {t[1]})"),
        sub.map(lambda e: f"!({e})"),
        st.tuples(sub, st.sampled_from(["==", "!=", "<", ">=", ">"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        sub.map(lambda e: f"length({e})"),
        sub.map(lambda e: f"lower({e})"), sub.map(lambda e: f"upper({e})"),
        st.tuples(sub, sub).map(lambda t: f"format('{{}}-{{}}', {t[0]}, {t[1]})"),
        st.tuples(sub, sub).map(lambda t: f"concat({t[0]}, {t[1]})"),
        st.tuples(sub, sub).map(lambda t: f"default({t[0]}, {t[1]})"),
        st.tuples(sub, sub).map(lambda t: f"coalesce({t[0]}, {t[1]})"),
        sub.map(lambda e: f"contains(['x', 'main', 'error'], {e})"),
        st.tuples(sub, sub).map(lambda t: f"contains({t[0]}, {t[1]})"),
        sub.map(lambda e: f"starts_with({e}, 'ma')"), sub.map(lambda e: f"ends_with({e}, 'n')"),
        sub.map(lambda e: f"to_string({e})"),
        st.tuples(sub, st.sampled_from(PATTERNS)).map(lambda t: f"regex_extract({t[0]}, '{t[1]}')"),
        sub.map(lambda e: f"split({e}, ',')[0]"),
        sub.map(lambda e: f"replace({e}, 'a', '-')"),
        sub.map(lambda e: f"from_epoch_ms({e})"), sub.map(lambda e: f"from_epoch({e})"),
        st.tuples(sub, sub).map(lambda t: f"sum([{t[0]}, {t[1]}])"),
        sub.map(lambda e: f"join(', ', {e})"),
        sub.map(lambda e: f"keys({e})"), sub.map(lambda e: f"values({e})"),
        sub.map(lambda e: f"from_json({e})"),
        st.tuples(sub, sub).map(lambda t: f"zip({t[0]}, {t[1]})"),
        st.tuples(st.sampled_from(KEYS), st.sampled_from(KEYS)).map(lambda t: f"{t[0]}[].{t[1]}"),
        st.tuples(st.sampled_from(KEYS), st.sampled_from(KEYS)).map(lambda t: f"{t[0]}[*].{t[1]}"),
        st.tuples(st.sampled_from(KEYS), st.sampled_from(KEYS)).map(lambda t: f"{t[0]}[?{t[1]} == 'x'].{t[1]}"),
        st.sampled_from(KEYS).map(lambda k: f"{k}[]"),
        st.tuples(sub, sub).map(lambda t: f"[{t[0]}, {t[1]}]"),
        st.tuples(sub, sub).map(lambda t: f"{{k1: {t[0]}, k2: {t[1]}}}"),
        st.tuples(sub, sub).map(lambda t: f"{t[0]} | {t[1]}"),
    )


plain_expressions = _expr(2, paths)
pair_expressions = _expr(2, pair_paths)


@st.composite
def mappings(draw):
    for_each = draw(st.sampled_from([None, None, "items", "a", "items[].b"]))
    expressions = plain_expressions if for_each is None else pair_expressions
    prefix = "" if for_each is None else draw(st.sampled_from(["item.", "record."]))
    output = {
        "kind": "thing", "event_type": "system",
        "fields": {
            "external_id": draw(st.sampled_from(["id", "name", "format('{}', id)", "id || 'none'"]).map(
                lambda e: e.replace("id", prefix + "id").replace("name", prefix + "name"))),
            "occurred_at": draw(st.sampled_from(["'2024-05-01T12:00:00Z'", "ts", "ts || '2024-05-01T00:00:00Z'",
                                                 "from_epoch_ms(id)"]).map(
                lambda e: e.replace("ts", prefix + "ts").replace("(id)", f"({prefix}id)"))),
            "title": draw(st.one_of(expressions, st.just("'t'"))),
            "attributes.v1": draw(expressions),
        },
    }
    # the other parts of an event, each sometimes (fewer expressions: DuckDB plans faster)
    part = draw(st.sampled_from(["resource_ids", "attributes", "severity", "hints", "links"]))
    if part == "resource_ids":
        output["fields"]["resource_ids"] = draw(expressions)
    elif part == "attributes":
        output["fields"]["attributes.n.v2"] = draw(expressions)
    elif part == "severity":
        output["severity"] = [{"when": draw(expressions), "level": "high"}, {"level": "low"}]
    elif part == "hints":
        output["correlation_hints"] = [{"type": "resource_id", "value": draw(expressions), "confidence": 0.5}]
    else:
        output["evidence_links"] = [{"type": "log", "url": draw(expressions), "description": draw(expressions),
                                     "metadata": {"m": draw(expressions)}}]
    if draw(st.booleans()):
        output["when"] = draw(plain_expressions)
    if draw(st.booleans()):
        output["required"] = ["attributes.v1"]
    if for_each is not None:
        output["for_each"] = for_each
    return {"plugin": "gen", "source": "gen", "outputs": [output]}


def _key(result):
    return ([e.to_json_dict() for e in result.events],
            [(r.record_index, r.field, r.reason, r.output, r.expression) for r in result.rejections],
            result.summary())


ENGINE = SqlEngine(python_below=0)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=mappings(), batch=st.lists(records, min_size=1, max_size=6))
def test_sql_engine_matches_python_engine(spec, batch):
    """Feature: integrations, Property 4: the compiled SQL engine transforms any record exactly as the
    Python engine does (same events, same nulls and missing keys, same rejections)."""
    compiled, errors = compile_mapping_text(yaml.safe_dump(spec, allow_unicode=True))
    assume(compiled is not None and not errors)
    expected = PythonEngine().map(compiled, batch, tenant_id="t")
    actual = ENGINE.map(compiled, batch, tenant_id="t")
    assert _key(actual) == _key(expected), json.dumps(spec)[:2000]


@pytest.mark.parametrize("value", [67768036191676796929, -(10**15), 10**400, 1e300, 1700000000123])
def test_epoch_out_of_datetime_range_rejects_the_record_in_both_engines(value):
    """A time no datetime can hold (the C library raises OSError for it) is a rejection naming the
    field, the same in both engines, not an exception out of the batch (found by the test above)."""
    spec = {"plugin": "gen", "source": "gen", "outputs": [{
        "kind": "thing", "event_type": "system",
        "fields": {"external_id": "to_string(id)", "occurred_at": "from_epoch_ms(id)", "title": "'t'"}}]}
    compiled, errors = compile_mapping_text(yaml.safe_dump(spec))
    assert compiled is not None and not errors
    batch = [{"id": value}, {"id": 1700000000000}]
    expected = PythonEngine().map(compiled, batch, tenant_id="t")
    assert _key(ENGINE.map(compiled, batch, tenant_id="t")) == _key(expected)
    assert len(expected.events) == (2 if value == 1700000000123 else 1)
    if value != 1700000000123:
        (rejection,) = expected.rejections
        assert rejection.field == "occurred_at" and "from_epoch_ms()" in rejection.reason
