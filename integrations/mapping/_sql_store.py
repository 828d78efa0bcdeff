"""Store rows built in SQL: the event rules, canonical JSON, event ids and content hashes.

The fast path (`map_file`) never makes a Python object for an event it can build in SQL. This
module turns an output's compiled values into the columns of the store's `events` table with the
same text the Python path writes: `canonical_json` (sorted keys, no spaces), `event_id_for`
(UUIDv5 over SHA-1), `format_rfc3339`, `content_hash` (SHA-256 of the whole event's canonical
JSON). Where SQL can't be sure of that text (an object value whose keys need sorting, a float in
exponent form, a control character, a timestamp form other than plain ISO-8601), the row is built
in Python from the same values instead (`sqlrow` is false), and where the Python rules reject the
record, the whole record goes to the Python engine.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import duckdb
import pyarrow as pa

from integrations.events._model import EVENT_NAMESPACE
from integrations.mapping._sql_compile import Compiler, V, sql_str

STORE_MACROS = [
    # as_text(): NULL where Python rejects the value (null, list, object) or prints it otherwise.
    "CREATE OR REPLACE TEMP MACRO astext2(v, t) AS CASE WHEN t IN ('n', 'a', 'o') THEN NULL ELSE jtext2(v, t) END",
    "CREATE OR REPLACE TEMP MACRO astext(v) AS astext2(v, jt(v))",
    # canonical_json() of a value, NULL where SQL can't be sure of Python's text.
    ("CREATE OR REPLACE TEMP MACRO canon2(v, t) AS CASE WHEN t = 'o' THEN NULL "
     "WHEN t = 'a' THEN CASE WHEN regexp_matches(v::VARCHAR, '[{]|[0-9][eE]|[0-9][.]0000|[0-9]{16}') THEN NULL "
     "ELSE v::VARCHAR END "
     "WHEN t = 'd' THEN pyfloat(CAST(v AS VARCHAR)) WHEN t = 'i' THEN CAST(jint2(v, t) AS VARCHAR) "
     "ELSE v::VARCHAR END"),
    # as_text_list(): NULL elements are dropped; a NULL in the result means Python rejects.
    ("CREATE OR REPLACE TEMP MACRO astextlist2(v, t) AS CASE WHEN t = 'n' THEN []::VARCHAR[] "
     "WHEN t = 'a' THEN list_transform(list_filter(from_json(v, '[\"JSON\"]'), lambda e: NOT jnull(e)), "
     "lambda e: astext(e)) ELSE [astext2(v, t)] END"),
    "CREATE OR REPLACE TEMP MACRO nonull(l) AS (len(list_filter(l, lambda s: s IS NULL)) = 0)",
    # Plain ISO-8601 timestamps that datetime.fromisoformat and DuckDB read the same way.
    ("CREATE OR REPLACE TEMP MACRO isots(t) AS CASE WHEN regexp_full_match(t, "
     "'(19|[2-9][0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,6})?"
     "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?') AND NOT starts_with(t, '9999') "
     "THEN TRY_CAST(CASE WHEN regexp_matches(t, '(Z|[+-][0-9]{2}:[0-9]{2})$') THEN t ELSE t || 'Z' END AS TIMESTAMPTZ) END"),
    ("CREATE OR REPLACE TEMP MACRO rfc3339(ts) AS CASE WHEN epoch_us(ts) % 1000000 = 0 "
     "THEN strftime(timezone('UTC', ts), '%Y-%m-%dT%H:%M:%S') || 'Z' "
     "ELSE rtrim(strftime(timezone('UTC', ts), '%Y-%m-%dT%H:%M:%S.%f'), '0') || 'Z' END"),
    ("CREATE OR REPLACE TEMP MACRO uuid5hex(name) AS sha1(unhex('" + EVENT_NAMESPACE.hex + "') || encode(name))"),
]

EVENT_COLUMNS = ["event_id", "tenant_id", "event_type", "kind", "severity", "title", "occurred_at",
                 "source_integration", "source", "external_id", "resource_ids", "hint_values", "attributes",
                 "integration_context", "content_hash"]


def install_store_macros(conn) -> None:
    for statement in STORE_MACROS:
        conn.execute(statement)
    try:
        conn.create_function("sha256hex", _sha256_hex, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"),
                             type="arrow", side_effects=False)
    except duckdb.CatalogException:
        pass  # already there on this connection


def _sha256_hex(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """SHA-256 hex digests of UTF-8 texts, hashed straight from the Arrow buffers.

    DuckDB's own sha256() runs at about 250 MB/s here; Python's hashlib (OpenSSL, with the CPU's
    SHA instructions) at about 1 GB/s, and the content hashes are a large part of a bulk mapping.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.large_string())
    _validity, offsets, data = texts.buffers()
    bounds = memoryview(offsets).cast("q")[texts.offset:texts.offset + len(texts) + 1].tolist()
    view = memoryview(data) if data is not None else memoryview(b"")
    sha256 = hashlib.sha256
    digests = [sha256(view[a:b]).hexdigest() for a, b in zip(bounds, bounds[1:])]
    mask = texts.is_null().to_numpy(zero_copy_only=False) if texts.null_count else None
    return pa.array(digests, pa.string(), mask=mask)


def _json_text(value: Any) -> str:
    """Python's canonical JSON of a constant, as a SQL string literal."""
    return sql_str(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _is_null(v: V) -> str:
    return Compiler.isnull(v)


class _Pre:
    """Helper macros of field values as columns of a first stage (each macro expands once)."""

    def __init__(self) -> None:
        self.columns: dict[str, str] = {}

    def __call__(self, macro: str, v: V) -> str:
        if macro in ("astext", "canon", "astextlist"):
            return self.column(f"{macro}2({v.sql}, {self.column(f'jt({v.sql})', 0)})", 1)
        return self.column(f"{macro}({v.sql})", 0)

    def column(self, sql: str, stage: int) -> str:
        if sql not in self.columns:
            self.columns[sql] = (f"pv{len(self.columns)}", stage)
        return self.columns[sql][0]

    def stages(self) -> list[list[str]]:
        out: list[list[str]] = [[], []]
        for sql, (name, stage) in self.columns.items():
            out[stage].append(f"{sql} AS {name}")
        return [items for items in out if items]


_PRE = _Pre()  # replaced per call of row_stages


def _astext(v: V) -> str:
    if v.kind == "str":
        return v.sql
    if v.kind == "int":
        return f"CAST({v.sql} AS VARCHAR)"
    if v.kind == "bool":
        return f"CASE WHEN {v.sql} THEN 'true' WHEN NOT {v.sql} THEN 'false' END"
    return _PRE("astext", v)


def _canon(v: V) -> str:
    if v.kind == "str":
        return f"to_json({v.sql})::VARCHAR"
    if v.kind in ("int", "bool"):
        return f"CAST({v.sql} AS VARCHAR)"
    return _PRE("canon", v)


def _textlist(v: V) -> str:
    if v.kind == "json":
        return _PRE("astextlist", v)
    text = _astext(v)
    return f"(CASE WHEN {v.sql} IS NULL THEN []::VARCHAR[] ELSE [{text}] END)"


def _attribute_tree(fields: list[tuple[str, V]]) -> dict | None:
    """{key: subtree | V} of the `attributes.*` fields, or None when set_path order would matter."""
    tree: dict[str, Any] = {}
    for name, v in fields:
        if name == "attributes":
            return None
        if not name.startswith("attributes."):
            continue
        node = tree
        parts = name.split(".")[1:]
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                return None
            node = child
        if parts[-1] in node:
            return None
        node[parts[-1]] = v
    return tree


def _attributes_sql(tree: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(text of the object, SQL 'has any entry', guards) for a tree of attribute values."""
    entries, present, guards = [], [], []
    for key in sorted(tree):
        sub = tree[key]
        label = json.dumps(key, ensure_ascii=False) + ":"
        if isinstance(sub, dict):
            text, has, inner = _attributes_sql(sub)
            entries.append(f"CASE WHEN {has} THEN {sql_str(label)} || {text} END")
            present.append(has)
            guards.extend(inner)
        else:
            entries.append(f"CASE WHEN NOT {_is_null(sub)} THEN {sql_str(label)} || {_canon(sub)} END")
            present.append(f"(NOT {_is_null(sub)})")
            guards.append(f"({_is_null(sub)} OR {_canon(sub)} IS NOT NULL)")
    text = "('{' || concat_ws(',', " + ", ".join(entries) + ") || '}')" if entries else "'{}'"
    has = "(" + " OR ".join(present) + ")" if present else "false"
    return text, has, guards


def row_stages(plan, tenant_id: str, plugin: str) -> list[list[str]]:
    """SELECT items, stage by stage, giving the `events` columns of each scope row (and `ev_guard`)."""
    global _PRE
    _PRE = pre = _Pre()
    out = plan.out
    values = dict(plan.fields)
    guards: list[str] = []
    static_ok = bool(tenant_id)
    for name in out.spec.required:
        if name in values:
            guards.append(f"NOT {_is_null(values[name])}")
        else:
            static_ok = False
    ext = _astext(values["external_id"])
    guards.append(f"coalesce({ext} <> '', false)")
    raw_time = values["occurred_at"]
    raw_text = raw_time.sql if raw_time.kind == "str" else (
        pre("jstr", raw_time) if raw_time.kind == "json" else "NULL::VARCHAR")
    ts = f"isots({raw_text})"
    guards.append(f"{ts} IS NOT NULL")
    if "original_timestamp" in values:
        orig = values["original_timestamp"]
        original = f"(CASE WHEN {_is_null(orig)} THEN {raw_text} ELSE {_astext(orig)} END)"
    else:
        original = raw_text
    guards.append(f"{original} IS NOT NULL")
    title = _astext(values["title"])
    guards.append(f"{title} IS NOT NULL")
    tree = _attribute_tree(plan.fields)
    if tree is None:
        static_ok = False
        attributes = "'{}'"
    else:
        attributes, _has, more = _attributes_sql(tree)
        guards.extend(more)
    if "resource_ids" in values:
        rids = _textlist(values["resource_ids"])
        guards.append(f"nonull({rids})")
    else:
        rids = "[]::VARCHAR[]"
    # correlation hints: one list of non-empty texts per template
    hint_lists, hint_texts = [], []
    for (hint_type, _expr, confidence), v in zip(out.hints, plan.hints):
        values_list = _textlist(v)
        guards.append(f"nonull({values_list})")
        kept = f"list_filter({values_list}, lambda s: s <> '')"
        hint_lists.append(kept)
        head = '{"confidence":' + json.dumps(float(confidence)) + ',"type":' + json.dumps(hint_type) + ',"value":'
        hint_texts.append(f"nullif(array_to_string(list_transform({kept}, lambda s: {sql_str(head)} || to_json(s) || '}}'), ','), '')")
    hints = ("concat_ws(',', " + ", ".join(hint_texts) + ")") if hint_texts else "''"
    hint_values = (f"list_sort(list_distinct(flatten([{', '.join(hint_lists)}]::VARCHAR[][])))" if hint_lists
                   else "[]::VARCHAR[]")
    link_texts = []
    for (link_type, _url, desc_expr, meta), (url, desc, metas) in zip(out.links, plan.links):
        skip = f"({_is_null(url)} OR {_astext(url) if url.kind != 'json' else pre('jstr', url)} IS NOT DISTINCT FROM '')"
        url_text = _astext(url)
        desc_text = "''" if desc is None else f"(CASE WHEN {_is_null(desc)} THEN '' ELSE {_astext(desc)} END)"
        entries = []
        for key in sorted(meta):
            mv = metas[list(meta).index(key)]
            label = json.dumps(key, ensure_ascii=False) + ":"
            entries.append(f"CASE WHEN NOT {_is_null(mv)} THEN {sql_str(label)} || {_canon(mv)} END")
            guards.append(f"({skip} OR {_is_null(mv)} OR {_canon(mv)} IS NOT NULL)")
        meta_text = "('{' || concat_ws(',', " + ", ".join(entries) + ") || '}')" if entries else "'{}'"
        guards.append(f"({skip} OR ({url_text} IS NOT NULL AND {desc_text} IS NOT NULL))")
        link_texts.append(f"CASE WHEN NOT {skip} THEN concat('{{\"description\":', to_json({desc_text}), "
                          f"',\"metadata\":', {meta_text}, ',\"type\":', {_json_text(link_type)}, "
                          f"',\"url\":', to_json({url_text}), '}}') END")
    links = ("concat_ws(',', " + ", ".join(link_texts) + ")") if link_texts else "''"
    kind = out.spec.kind
    context = (f"concat('{{\"correlation_hints\":[', ev_hints_text, '],\"enrichment_metadata\":{{}},\"evidence_links\":[', "
               f"ev_links_text, '],\"external_id\":', to_json(ev_ext), ',\"original_timestamp\":', "
               f"to_json(ev_orig), ',\"source_integration\":', {_json_text(plugin)}, '}}')")
    name_prefix = " || chr(31) || ".join(sql_str(x) for x in (tenant_id, plugin, kind)) + " || chr(31)"
    first = [
        f"{ext} AS ev_ext",
        f"{ts} AS ev_ts",
        f"{original} AS ev_orig",
        f"{title} AS ev_title",
        f"{rids} AS ev_rids",
        f"{hint_values} AS ev_hint_values",
        f"{attributes} AS ev_attributes",
        f"{plan.severity.sql} AS ev_severity",  # noqa: reads scope columns
        f"{hints} AS ev_hints_text",
        f"{links} AS ev_links_text",
        f"coalesce({' AND '.join(f'({g})' for g in guards) if guards else 'true'}, false) AND {str(static_ok).lower()} AS ev_guard",
    ]
    second = [f"uuid5hex({name_prefix} || ev_ext) AS ev_h", f"{context} AS ev_context"]
    third = ["concat(substr(ev_h, 1, 8), '-', substr(ev_h, 9, 4), '-5', substr(ev_h, 14, 3), '-', "
             "substr('89ab89ab89ab89ab', strpos('0123456789abcdef', substr(ev_h, 17, 1)), 1), substr(ev_h, 18, 3), "
             "'-', substr(ev_h, 21, 12)) AS event_id"]
    whole = (f"concat('{{\"attributes\":', ev_attributes, ',\"event_id\":\"', event_id, '\",\"event_type\":', "
             f"{_json_text(out.spec.event_type)}, ',\"integration_context\":', ev_context, ',\"kind\":', "
             f"{_json_text(kind)}, ',\"occurred_at\":\"', rfc3339(ev_ts), '\",\"resource_ids\":', "
             f"to_json(ev_rids), ',\"severity\":\"', ev_severity, '\",\"tenant_id\":', {_json_text(tenant_id)}, "
             f"',\"title\":', to_json(ev_title), '}}') AS ev_whole")
    stages = [first, second, third, [whole]]
    return pre.stages() + stages


def rows_query(plan, out_index: int, source_rel: str, tenant_id: str, plugin: str, source: str,
               held: bool = False) -> str:
    """Scope rows with every `events` column where `sqlrow`, else the values for Python to build.

    With `held` (see `OutputPlan.relation`), rows SQL did not build also carry the record's `line`.
    """
    stages = row_stages(plan, tenant_id, plugin)
    listed = ", ".join(f"CAST({Compiler.to_json(v).sql} AS JSON)" for v in plan.event_values())
    ctes = [f"r0 AS (SELECT *, {plan.scope_ok()} AS ok FROM scopes)"]
    for i, items in enumerate(stages, start=1):
        ctes.append(f"r{i} AS (SELECT *, {', '.join(items)} FROM r{i - 1})")
    last = f"r{len(stages)}"
    # concat() skips NULLs, so the parts that could be NULL once the guard holds are tested here.
    sqlrow = "coalesce(ok AND NOT bad AND ev_guard AND ev_severity IS NOT NULL AND NOT contains(ev_whole, '\\u00'), false)"
    ctes.append(f"rr AS (SELECT *, {sqlrow} AS sqlrow FROM {last})")
    line = ", CASE WHEN NOT sqlrow THEN line END AS line" if held else ""
    return (plan.relation(source_rel, held) + ",\n" + ",\n".join(ctes) + "\n"
            f"SELECT rid, {out_index}::INTEGER AS out, pos, bad, ok, sqlrow, "
            f"event_id, {sql_str(tenant_id)} AS tenant_id, {sql_str(plan.out.spec.event_type)} AS event_type, "
            f"{sql_str(plan.out.spec.kind)} AS kind, ev_severity AS severity, ev_title AS title, ev_ts AS occurred_at, "
            f"{sql_str(plugin)} AS source_integration, {sql_str(source)} AS source, ev_ext AS external_id, "
            f"ev_rids AS resource_ids, ev_hint_values AS hint_values, ev_attributes AS attributes, "
            f"ev_context AS integration_context, sha256hex(ev_whole) AS content_hash, "
            f"CASE WHEN ok AND NOT bad AND NOT sqlrow THEN to_json([{listed}]::JSON[]) END AS vals{line} "
            f"FROM rr")
