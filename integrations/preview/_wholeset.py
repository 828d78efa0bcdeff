"""Whole-set figures with the compiled engine: coverage, counts and changed records over every sample.

Mapping 100,000 records into events takes tens of seconds; the workbench needs its figures in
under two. So the whole set never becomes events here. Each output of a mapping is compiled to
SQL by the compiled engine (`integrations.mapping._sql.plan_output`) and run over the sample
table, keeping one row per would-be event: whether SQL vouches for it, which fields are set,
and a signature of its values. Figures are aggregates of those rows.

Two things keep it fast while a person types:
- a *slim* copy of the records, holding only the paths the mappings read (cut at a list or at
  depth 3, and only paths that exist in the set), so a 8 KB GitHub payload becomes a few hundred
  bytes; an expression that starts reading another existing path gets a slim copy of its own
  paths, made from the records' top-level values (kept apart once per loaded set);
- the rows of each output are cached by the output's text, so editing one output recomputes
  only that one, and the saved mapping is computed once.

Exactness: a row SQL cannot vouch for (a compiled guard failed, or the event rules - required
fields, ids, timestamps, texts - might reject it) sends its record to the reference Python
engine, as the compiled engine itself does; so rejection counts are the reference engine's.
Without the compiled engine, everything goes through `MappingEngine.map`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from integrations.errors import IntegrationsError
from integrations.mapping import CompiledMapping, CompiledOutput, get_engine, map_record, output_scopes
from integrations.mapping._unmapped import LIST, _walk
from integrations.preview._samples import SampleKey, SampleSet

DEPTH = 3  # slim records keep paths down to this depth (deeper reads keep the subtree)
_CACHE_TABLES = 160
_MAX_SLIMS = 16  # slim copies per loaded set before expressions read the full records
_MAX_SHRED_KEYS = 200  # top-level keys kept apart for widening (more: new paths read whole records)
_SCALAR_TYPES = "('VARCHAR', 'BIGINT', 'UBIGINT', 'BOOLEAN')"
_ISO = r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?"

Path_ = tuple[str, ...]


@dataclass
class FieldCoverage:
    output: str
    field: str
    expression: str
    set: int = 0


@dataclass
class OutputFigures:
    """Per output: events made, and per field how many of them have it set."""

    name: str
    kind: str
    events: int = 0
    fields: list[FieldCoverage] = field(default_factory=list)


@dataclass
class WholeSetFigures:
    """What the whole sample set gives under a mapping (and how it differs from the saved one)."""

    records: int = 0
    mapped: int = 0
    filtered: int = 0
    rejected: int = 0
    outputs: list[OutputFigures] = field(default_factory=list)
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    changed: list[int] = field(default_factory=list)  # record indexes whose events differ from the saved mapping
    compared: bool = False  # False when there was no saved mapping to compare with
    engine: str = "sql"
    checked_by_python: int = 0  # records the reference engine decided
    unchecked: int = 0  # records SQL could not vouch for and the Python budget did not reach
    seconds: float = 0.0


# -- which paths a mapping reads ------------------------------------------------------------------


def _expr_reads(expr) -> set[Path_]:
    local: set[Path_] = set()
    result = _walk(expr.parsed.parsed, (), local)
    if result is not None:
        local.add(result)
    return local


def _output_paths(out: CompiledOutput, names: set[str] | None = None) -> set[Path_] | None:
    """Record paths the output's expressions read (all, or those named), relative to the record."""
    paths: set[Path_] = set()
    fe_path: Path_ | None = None
    if out.for_each is not None:
        fe_result = _walk(out.for_each.parsed.parsed, (), set())
        fe_path = tuple(p for p in fe_result if p != LIST) if fe_result is not None else None
        if names is None or "for_each" in names:
            paths |= _expr_reads(out.for_each)
    for name, expr in out.expressions():
        if name == "for_each" or (names is not None and name not in names):
            continue
        for path in _expr_reads(expr):
            if out.for_each is not None:
                if path[:1] == ("record",):
                    path = path[1:]
                elif path[:1] == ("item",):
                    if fe_path is None:
                        return None
                    path = fe_path + (LIST,) + path[1:]
                elif path == ():
                    return None
                else:
                    continue  # other keys of {item, record} are always null
            paths.add(path)
    return _cut(paths)


def _cut(paths: set[Path_]) -> set[Path_] | None:
    cut: set[Path_] = set()
    for path in paths:
        kept: list[str] = []
        for part in path:
            if part == LIST or len(kept) == DEPTH:
                break
            kept.append(part)
        if not kept:
            return None
        cut.add(tuple(kept))
    return cut


def read_projection(mappings: list[CompiledMapping]) -> set[Path_] | None:
    """Record paths (cut at the first list or at DEPTH) every expression may read; None: the whole record."""
    paths: set[Path_] = set()
    for mapping in mappings:
        for out in mapping.outputs:
            found = _output_paths(out)
            if found is None:
                return None
            paths |= found
    return paths


def _covers(slim: set[Path_] | None, paths: set[Path_] | None, structure: Any) -> bool:
    """Whether a slim copy keeping `slim` gives the same values as the full record for `paths`."""
    if slim is None:
        return True  # the "slim" copy is the full set
    if paths is None:
        return False
    return all(any(p[:len(q)] == q for q in slim) for p in _existing(paths, structure))


def _existing(paths: set[Path_], structure: Any) -> set[Path_]:
    """Only the paths that exist somewhere in the set; a path through a non-object stops there."""
    out: set[Path_] = set()
    for path in paths:
        node = structure
        kept: list[str] = []
        for part in path:
            if not isinstance(node, dict):
                break  # a leaf, a list or a mixed type here: keep this node whole
            if part not in node:
                kept = []
                break
            kept.append(part)
            node = node[part]
        if kept:
            out.add(tuple(kept))
    # A kept path makes its descendants redundant.
    return {p for p in out if not any(q != p and p[:len(q)] == q for q in out)}


def _jpath(path: Path_) -> str:
    return "$" + "".join('."' + part + '"' for part in path)


def _slim_sql(paths: set[Path_]) -> tuple[list[str], str]:
    """(paths to extract, SQL building the slim record from `e` = json_extract(rec, those paths))."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = None
    listed: list[str] = []

    def index(path: Path_) -> int:
        text = _jpath(path)
        if text not in listed:
            listed.append(text)
        return listed.index(text) + 1

    def build(node: dict[str, Any], prefix: Path_) -> str:
        items = []
        for key, child in sorted(node.items()):
            path = prefix + (key,)
            value = f"e[{index(path)}]" if child is None else build(child, path)
            items.append(f"{_lit(key)}, {value}")
        obj = f"json_object({', '.join(items)})"
        if not prefix:
            return obj
        at = f"e[{index(prefix)}]"
        return f"CASE WHEN json_type({at}) = 'OBJECT' THEN {obj} ELSE {at} END"

    return listed, build(tree, ())


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- the compiled rows of one output --------------------------------------------------------------


def _output_key(out: CompiledOutput, plugin: str) -> str:
    spec = out.spec.model_dump(mode="json")
    return hashlib.sha1(json.dumps([plugin, spec], sort_keys=True).encode()).hexdigest()[:16]


def _value_labels(out: CompiledOutput) -> list[str]:
    labels = list(out.fields) + ["severity"] + [f"hint{i}" for i in range(len(out.hints))]
    for i, (_t, _url, desc, meta) in enumerate(out.links):
        labels.append(f"link{i}.url")
        if desc is not None:
            labels.append(f"link{i}.description")
        labels.extend(f"link{i}.metadata.{k}" for k in meta)
    return labels


_MACROS = [
    "CREATE OR REPLACE TEMP MACRO wb_t(v) AS coalesce(json_type(v), 'NULL')",
    "CREATE OR REPLACE TEMP MACRO wb_null(v) AS (v IS NULL OR CAST(v AS VARCHAR) = 'null')",
    "CREATE OR REPLACE TEMP MACRO wb_truthy(v) AS (v IS NOT NULL AND CAST(v AS VARCHAR) NOT IN ('null', 'false', '\"\"', '[]', '{}'))",
    "CREATE OR REPLACE TEMP MACRO wb_str(v) AS CASE WHEN json_type(v) = 'VARCHAR' THEN v->>'$' END",
]


def _rules_sql(out: CompiledOutput, js: dict[str, str], hints: list[str], links: list[tuple[str, str | None]]) -> str:
    """SQL that holds when the event rules of `_build_event` surely accept the values (JSON columns)."""
    conds: list[str] = []

    def scalar(x: str, nullable: bool = False) -> str:
        allowed = _SCALAR_TYPES if not nullable else _SCALAR_TYPES[:-1] + ", 'NULL')"
        return f"wb_t({x}) IN {allowed}"

    def text_list(x: str) -> str:
        inner = f"wb_t(x) IN ('NULL', {_SCALAR_TYPES[1:-1]})"
        return (f"({scalar(x, True)} OR (wb_t({x}) = 'ARRAY' AND coalesce(list_bool_and(list_transform("
                f"from_json({x}, '[\"JSON\"]'), lambda x: {inner})), true)))")

    ext = js.get("external_id")
    conds.append(f"{scalar(ext)} AND CASE WHEN wb_t({ext}) = 'VARCHAR' THEN wb_str({ext}) <> '' ELSE true END"
                 if ext else "false")
    occ = js.get("occurred_at")
    conds.append(f"wb_t({occ}) = 'VARCHAR' AND regexp_full_match(wb_str({occ}), '{_ISO}') "
                 f"AND try_cast(wb_str({occ}) AS TIMESTAMPTZ) IS NOT NULL" if occ else "false")
    title = js.get("title")
    conds.append(scalar(title) if title else "false")
    if "original_timestamp" in js:
        conds.append(scalar(js["original_timestamp"], True))
    if "resource_ids" in js:
        conds.append(text_list(js["resource_ids"]))
    if "attributes" in js:
        conds.append(f"wb_t({js['attributes']}) IN ('NULL', 'OBJECT')")
    for name in out.spec.required:
        if name in js:
            conds.append(f"NOT wb_null({js[name]})")
        elif name.startswith("attributes.") and "attributes" in js:
            conds.append(f"NOT wb_null(json_extract({js['attributes']}, {_lit(_jpath(tuple(name.split('.')[1:])))}))")
        else:
            conds.append("false")
    for hint in hints:
        conds.append(text_list(hint))
    for url, desc in links:
        link_ok = f"(wb_null({url}) OR wb_str({url}) = '' OR ({scalar(url)}"
        if desc is not None:
            link_ok += f" AND {scalar(desc, True)}"
        conds.append(link_ok + "))")
    return " AND ".join(f"coalesce({c}, false)" for c in conds)


def _scopes_sql(out: CompiledOutput, source: str, table: str) -> str:
    """The scopes of an output (one row per would-be event, plus `bad` rows), in (rid, pos) order."""
    from integrations.mapping._sql import plan_output

    skeleton = CompiledOutput(spec=out.spec, index=out.index, when=out.when, for_each=out.for_each, fields={},
                              severity=[], hints=[], links=[])
    plan = plan_output(skeleton)
    item = "item" if out.for_each is not None else "NULL::JSON AS item"
    return (f"CREATE OR REPLACE TEMP TABLE {table} AS\n{plan.relation(source)}\n"
            f"SELECT rid, pos, bad, {item} FROM scopes ORDER BY rid, pos")


def _expression_sql(expr, pair: bool, scopes: str, source: str, table: str) -> str:
    """One expression over the good scopes, in (rid, pos) order: (ok, val as JSON text)."""
    return _expressions_sql([expr], pair, scopes, source, table, single=True)


def _expressions_sql(exprs: list, pair: bool, scopes: str, source: str, table: str, single: bool = False) -> str:
    """Expressions over the good scopes in (rid, pos) order: `ok<i>`, `val<i>` (`ok`, `val` when single)."""
    from integrations.mapping import _sql
    from integrations.mapping._sql_compile import Compiler

    compiler = Compiler()
    values = [Compiler.to_json(compiler.compile(e.parsed.parsed, Compiler.pair_scope() if pair else Compiler.record_scope()))
              for e in exprs]
    for key, node in compiler.fallbacks.items():
        _sql._FALLBACK_NODES.setdefault(key, node.node)
    ctes = [f"s0 AS (SELECT s.rid, s.pos, r.rec, s.item FROM {scopes} AS s JOIN {source} AS r ON r.rid = s.rid "
            "WHERE NOT s.bad)"]
    for tier in (1, 2):
        for items in compiler.stages.stage_selects(tier):
            if items:
                ctes.append(f"s{len(ctes)} AS (SELECT *, {', '.join(items)} FROM s{len(ctes) - 1})")
    columns = []
    for i, value in enumerate(values):
        suffix = "" if single else str(i)
        ok = f"coalesce({value.ok}, false)" if value.ok else "true"
        columns.append(f"{ok} AS ok{suffix}, CAST({value.sql} AS VARCHAR) AS val{suffix}")
    return (f"CREATE OR REPLACE TEMP TABLE {table} AS WITH {', '.join(ctes)}\n"
            f"SELECT {', '.join(columns)} FROM s{len(ctes) - 1} ORDER BY rid, pos")


class _NoSql(Exception):
    """The compiled engine cannot run this: use the Python path."""


# -- the cache per sample set ---------------------------------------------------------------------


class WholeSet:
    """Slim copies and per-output rows of one SampleSet, reused across previews."""

    def __init__(self, samples: SampleSet) -> None:
        self.samples = samples
        self.tables: OrderedDict[tuple, str] = OrderedDict()
        self.structures: dict[tuple, Any] = {}
        self.counter = 0
        self.lock = threading.RLock()
        self.outcomes: dict = {}  # the saved mapping's reference-engine outcomes, by record
        self.macros = False
        self.slims: dict[tuple, list[tuple[str, set[Path_] | None]]] = {}
        self.shreds: dict[tuple, tuple[str, list[str]]] = {}
        self.action_counts: dict[tuple, dict[str, int]] = {}

    @classmethod
    def of(cls, samples: SampleSet) -> "WholeSet":
        found = getattr(samples, "_wholeset", None)
        if found is None:
            found = cls(samples)
            samples._wholeset = found  # type: ignore[attr-defined]
        return found

    def _name(self, prefix: str) -> str:
        self.counter += 1
        return f"_ws_{prefix}{self.counter}"

    def _remember(self, key: tuple, table: str) -> None:
        self.tables[key] = table

    def trim(self) -> None:
        """Drop the least recently used tables (between computations, never during one)."""
        while len(self.tables) > _CACHE_TABLES:
            _old_key, old = self.tables.popitem(last=False)
            table = old.split("#")[0]  # `table#i`: column i of a table several expressions share
            if not any(other.split("#")[0] == table for other in self.tables.values()):
                self.samples.connection.execute(f"DROP TABLE IF EXISTS {table}")

    def structure(self, key: SampleKey, version: int) -> Any:
        """The merged JSON structure of every record (which paths exist), computed once per load."""
        cache_key = (key, version)
        if cache_key not in self.structures:
            rows = self.samples.connection.execute(
                f"SELECT json_group_structure(rec::JSON) FROM {self.samples.relation_sql(*key)}").fetchall()
            text = rows[0][0] if rows else None
            self.structures[cache_key] = json.loads(text) if text else {}
        return self.structures[cache_key]

    def slim_source(self, key: SampleKey, version: int, mappings: list[CompiledMapping]) -> tuple[str, set[Path_] | None]:
        """A table of `(rid, rec)` holding only what the mappings read: built once per loaded set, from
        the mappings of the first computation (see `source_for` for expressions reading more)."""
        found = self.slims.get((key, version))
        if found is not None:
            return found[0]
        for old in [k for k in self.slims if k[0] == key]:  # the set was loaded again
            for table, _paths in self.slims.pop(old):
                if table.startswith("_ws_"):
                    self.samples.connection.execute(f"DROP TABLE IF EXISTS {table}")
        for old in [k for k in self.shreds if k[0] == key and k[1] != version]:
            table = self.shreds.pop(old)[0]
            if table:
                self.samples.connection.execute(f"DROP TABLE IF EXISTS {table}")
        full = self.samples.relation_sql(*key)
        wanted = read_projection(mappings)
        if wanted is None:
            self.slims[(key, version)] = [(full, None)]
            return full, None
        paths = _existing(wanted, self.structure(key, version))
        table = self._slim_table(key, paths)
        self.shredded(key)  # now, with the set's first figures, so that a new path later reads little
        self.slims[(key, version)] = [(table, paths)]
        return table, paths

    def _slim_table(self, key: SampleKey, paths: set[Path_], *, from_shred: bool = False) -> str:
        """A slim copy keeping `paths`: read from the full records, or (`from_shred`) from the records'
        top-level values kept apart by `shredded`, which only parses the values the paths start in."""
        full = self.samples.relation_sql(*key)
        table = self._name("slim")
        if not paths:
            self.samples.connection.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT rid, CASE WHEN left(rec, 1) = '{{' "
                f"THEN '{{}}' ELSE rec END AS rec FROM {full} ORDER BY rid")
            return table
        listed, build = _slim_sql(paths)
        extract = ", ".join(_lit(p) for p in listed)
        shred, top_keys = self.shredded(key) if from_shred else ("", [])
        tops = sorted({p[0] for p in paths})
        if top_keys and all(top in top_keys for top in tops):
            parts = ", ".join(f"{_lit(top)}, c{top_keys.index(top)}" for top in tops)
            # `whole`: a record that is not an object, kept as it is (NULL for objects).
            source = (f"SELECT rid, coalesce(whole, '{{}}') AS rec, json_extract(json_object({parts}), [{extract}]) AS e "
                      f"FROM {shred}")
        else:
            source = f"SELECT rid, rec, json_extract(rec, [{extract}]) AS e FROM {full}"
        # Records are stored as valid, stripped JSON text: an object starts with '{' (no second parse).
        self.samples.connection.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT rid, CASE WHEN left(rec, 1) = '{{' "
            f"THEN CAST({build} AS VARCHAR) ELSE rec END AS rec FROM ({source}) ORDER BY rid")
        return table

    def shredded(self, key: SampleKey) -> tuple[str, list[str]]:
        """A table of each record's top-level values as JSON text (`c0`, `c1`... in the order of the
        returned keys), made with the first slim copy; no keys when the records are not objects."""
        version = self.samples.version(*key)
        found = self.shreds.get((key, version))
        if found is None:
            structure = self.structure(key, version)
            keys = sorted(structure) if isinstance(structure, dict) else []
            found = ("", [])  # nothing kept apart: new paths are read from the whole records
            if keys and len(keys) <= _MAX_SHRED_KEYS:
                table = self._name("shred")
                extract = ", ".join(_lit(_jpath((k,))) for k in keys)
                columns = ", ".join(f"e[{i + 1}] AS c{i}" for i in range(len(keys)))
                self.samples.connection.execute(
                    f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT rid, whole, {columns} FROM (SELECT rid, "
                    f"CASE WHEN left(rec, 1) = '{{' THEN json_extract(rec, [{extract}]) END AS e, "
                    f"CASE WHEN left(rec, 1) <> '{{' THEN rec END AS whole "
                    f"FROM {self.samples.relation_sql(*key)}) ORDER BY rid")
                found = (table, keys)
            self.shreds[(key, version)] = found
        return found

    def source_for(self, key: SampleKey, version: int, paths: set[Path_] | None) -> str:
        """The first slim copy that has everything `paths` read (the oldest first, so cached tables
        stay valid). An expression that starts reading another existing path gets a copy of its own
        paths, made from the records' top-level values (a small parse), so edits stay quick."""
        slims = self.slims[(key, version)]
        structure = self.structure(key, version)
        for slim, slim_paths in slims:
            if _covers(slim_paths, paths, structure):
                return slim
        if paths is None or slims[0][1] is None or len(slims) >= _MAX_SLIMS:
            return self.samples.relation_sql(*key)
        own = _existing(paths, structure)
        table = self._slim_table(key, own, from_shred=True)
        slims.append((table, own))
        return table

    def actions(self, key: SampleKey, version: int) -> dict[str, int]:
        """Records by their `action` (GitHub webhooks have one), once per loaded set."""
        found = self.action_counts.get((key, version))
        if found is None:
            found = dict(self.samples.connection.execute(
                f"SELECT coalesce(json_extract_string(rec, '$.action'), '(none)') AS a, count(*) FROM "
                f"{self.samples.relation_sql(*key)} WHERE json_type(rec) = 'OBJECT' AND json_exists(rec, '$.action') "
                f"GROUP BY a ORDER BY a").fetchall())
            self.action_counts[(key, version)] = found
        return found

    def _table(self, cache_key: tuple, prefix: str, make) -> str:
        table = self.tables.get(cache_key)
        if table is not None:
            self.tables.move_to_end(cache_key)
            return table
        table = self._name(prefix)
        self.samples.connection.execute(make(table))
        self._remember(cache_key, table)
        return table

    def output_rows(self, key: SampleKey, version: int, out: CompiledOutput, plugin: str) -> str:
        """A table of the output's would-be events: (rid, pos, bad, good, flags, sig).

        Built from one table per distinct expression, so an edit recomputes only the expressions
        whose text changed; the rest is a positional join of cached columns.
        """
        if not self.macros:
            for macro in _MACROS:
                self.samples.connection.execute(macro)
            self.macros = True
        cache_key = ("rows", key, version, _output_key(out, plugin))
        if cache_key in self.tables:
            self.tables.move_to_end(cache_key)
            return self.tables[cache_key]
        pair = out.for_each is not None
        scope_source = self.source_for(key, version, _output_paths(out, {"when", "for_each"}))
        scopes = self._table(("scopes", key, version, scope_source, out.when.text if out.when else None,
                              out.for_each.text if out.for_each else None), "scopes",
                             lambda t: _scopes_sql(out, scope_source, t))
        by_text = {expr.text: name for name, expr in out.expressions()}
        # Expressions not computed yet are computed together, one table per source: one plan, shared work.
        pending: dict[str, list] = {}
        for name, expr in out.expressions():
            if name in ("when", "for_each"):
                continue
            source = self.source_for(key, version, _output_paths(out, {name}))
            cache_entry = ("expr", scopes, source, pair, expr.text)
            group = pending.setdefault(source, [])
            if cache_entry not in self.tables and all(e.text != expr.text for _c, e in group):
                group.append((cache_entry, expr))
        for source, group in pending.items():
            if len(group) > 1:
                table = self._name("exprs")
                self.samples.connection.execute(_expressions_sql([e for _c, e in group], pair, scopes, source, table))
                for i, (cache_entry, _expr) in enumerate(group):
                    self._remember(cache_entry, f"{table}#{i}")
        aliases: dict[str, tuple[str, str, str]] = {}
        table_alias: dict[str, str] = {}
        joins: list[str] = []

        def column(expr) -> tuple[str, str, str]:
            if expr.text not in aliases:
                source = self.source_for(key, version, _output_paths(out, {by_text.get(expr.text, "")}))
                entry = self._table(("expr", scopes, source, pair, expr.text), "expr",
                                    lambda t: _expression_sql(expr, pair, scopes, source, t))
                table, _sep, index = entry.partition("#")
                if table not in table_alias:
                    table_alias[table] = f"e{len(table_alias)}"
                    joins.append(f"POSITIONAL JOIN {table} AS {table_alias[table]}")
                aliases[expr.text] = (table_alias[table], f"ok{index}", f"val{index}")
            return aliases[expr.text]

        def js(expr) -> str:
            # The value's JSON text as it is: the macros and JSON functions read text, and a cast
            # to JSON would parse every value of every row again (most of an edit's time).
            alias, _ok, val = column(expr)
            return f"{alias}.{val}"

        fields = {name: js(expr) for name, expr in out.fields.items()}
        labels: list[tuple[str, str]] = [(name, value) for name, value in fields.items()]
        severity = "'info'"
        whens = []
        for cond, level in out.severity:
            if cond is None:
                severity = _lit(level)
                break
            whens.append(f"WHEN wb_truthy({js(cond)}) THEN {_lit(level)}")
        if whens:
            severity = f"CASE {' '.join(whens)} ELSE {severity} END"
        hints = [js(expr) for _t, expr, _c in out.hints]
        labels += [(f"hint{i}", h) for i, h in enumerate(hints)]
        links: list[tuple[str, str | None]] = []
        for i, (_t, url, desc, meta) in enumerate(out.links):
            u = js(url)
            d = js(desc) if desc is not None else None
            links.append((u, d))
            labels.append((f"link{i}.url", u))
            if d is not None:
                labels.append((f"link{i}.description", d))
            labels += [(f"link{i}.metadata.{k}", js(e)) for k, e in meta.items()]
        oks = [f"{alias}.{ok}" for alias, ok, _val in aliases.values()]
        good = " AND ".join(oks + [_rules_sql(out, fields, hints, links)])
        flags = ", ".join(f"NOT wb_null({value})" for value in fields.values())
        # The signature: a 64-bit hash of (output, severity, the set values with their labels);
        # hashing is what lets an edit re-sign 100,000s of events in well under a second.
        parts = [f"CASE WHEN NOT wb_null({v}) THEN hash({_lit(label)}, {v}) END" for label, v in labels]
        head = _lit(f"{out.spec.kind}:{out.spec.event_type}:{out.name}")
        empty = "[]::BOOLEAN[]"

        def make(table: str) -> str:
            return (f"CREATE OR REPLACE TEMP TABLE {table} AS "
                    f"SELECT b.rid, b.pos, false AS bad, coalesce({good}, false) AS good, "
                    f"{'[' + flags + ']::BOOLEAN[]' if flags else empty} AS flags, "
                    f"hash({head}, {severity}, list_filter([{', '.join(parts) or 'NULL'}]::UBIGINT[], "
                    f"lambda h: h IS NOT NULL)) AS sig "
                    f"FROM (SELECT rid, pos FROM {scopes} WHERE NOT bad) AS b {' '.join(joins)} "
                    f"UNION ALL SELECT rid, pos, true, false, {empty}, NULL FROM {scopes} WHERE bad")

        return self._table(cache_key, "rows", make)


# -- the figures ----------------------------------------------------------------------------------


def whole_set_figures(samples: SampleSet, key: SampleKey, mapping: CompiledMapping, *, tenant_id: str,
                      saved: CompiledMapping | None = None, python_budget: float | None = 1.0) -> WholeSetFigures:
    """Coverage, counts and changed records over the whole set (see the module docstring).

    Records the compiled engine cannot vouch for go to the reference engine for at most
    `python_budget` seconds (None: no limit); the rest are counted in `unchecked`.
    """
    started = time.perf_counter()
    try:
        figures = _with_sql(samples, key, mapping, tenant_id, saved, python_budget)
    except _NoSql:
        figures = _with_engine(samples, key, mapping, tenant_id, saved)
    figures.seconds = time.perf_counter() - started
    return figures


def _sql_available() -> bool:
    try:
        from integrations.mapping._sql import plan_output  # noqa: F401
    except ImportError:
        return False
    return True


def _with_sql(samples: SampleSet, key: SampleKey, mapping: CompiledMapping, tenant_id: str,
              saved: CompiledMapping | None, python_budget: float | None) -> WholeSetFigures:
    import duckdb

    if not _sql_available():
        raise _NoSql("no compiled engine")
    cache = WholeSet.of(samples)
    version = samples.version(*key)
    with samples.lock, cache.lock:
        conn = samples.connection
        cache.trim()
        try:
            cache.slim_source(key, version, ([saved] if saved is not None else []) + [mapping])
            new_tables = [cache.output_rows(key, version, out, mapping.plugin) for out in mapping.outputs]
            old_tables = ([cache.output_rows(key, version, out, saved.plugin) for out in saved.outputs]
                          if saved is not None else [])
        except (duckdb.Error, _NoSql) as err:
            raise _NoSql(str(err)) from None
        except Exception as err:  # noqa: BLE001 - the compiled engine could not plan: Python decides
            raise _NoSql(f"{type(err).__name__}: {err}") from None
        records = samples.count(*key)
        figures = WholeSetFigures(records=records, engine="sql", compared=saved is not None)

        def union(tables: list[str], what: str) -> str:
            return " UNION ALL ".join(f"SELECT {i} AS o, {what} FROM {t}" for i, t in enumerate(tables)) or \
                "SELECT NULL::INTEGER AS o, NULL::BIGINT AS rid, NULL::BOOLEAN AS good WHERE false"

        new_u = union(new_tables, "rid, pos, good, sig")
        # Records SQL cannot vouch for, under either mapping: the reference engine decides them.
        delegated_new = {r[0] for r in conn.execute(f"SELECT DISTINCT rid FROM ({new_u}) WHERE NOT good").fetchall()}
        delegated_old: set[int] = set()
        if old_tables:
            old_u = union(old_tables, "rid, pos, good, sig")
            delegated_old = {r[0] for r in conn.execute(f"SELECT DISTINCT rid FROM ({old_u}) WHERE NOT good").fetchall()}
        skip = sorted(delegated_new)
        conn.execute("CREATE OR REPLACE TEMP TABLE _ws_skip (rid BIGINT)")
        if skip:
            conn.execute("INSERT INTO _ws_skip SELECT unnest(?::BIGINT[])", [skip])
        for i, (out, table) in enumerate(zip(mapping.outputs, new_tables)):
            counts = ", ".join(f"count(*) FILTER (WHERE flags[{j + 1}])" for j in range(len(out.fields))) or "0"
            row = conn.execute(f"SELECT count(*), {counts} FROM {table} WHERE rid NOT IN (SELECT rid FROM _ws_skip)"
                               ).fetchall()[0]
            figures.outputs.append(OutputFigures(out.name, out.spec.kind, row[0], [
                FieldCoverage(out.name, name, expr.text, row[j + 1] or 0)
                for j, (name, expr) in enumerate(out.fields.items())]))
        mapped = conn.execute(f"SELECT count(DISTINCT rid) FROM ({new_u}) WHERE rid NOT IN (SELECT rid FROM _ws_skip)"
                              ).fetchall()[0][0]
        figures.mapped = mapped
        figures.filtered = records - mapped - len(delegated_new)
        figures.actions = dict(cache.actions(key, version))
        changed: set[int] = set()
        python_rids = delegated_new | delegated_old
        if saved is not None:
            old_u = union(old_tables, "rid, pos, good, sig")
            diff_sql = f"""
                WITH n AS (SELECT rid, list(sig ORDER BY o, pos) AS s FROM ({new_u}) GROUP BY rid),
                     p AS (SELECT rid, list(sig ORDER BY o, pos) AS s FROM ({old_u}) GROUP BY rid)
                SELECT coalesce(n.rid, p.rid) FROM n FULL OUTER JOIN p ON n.rid = p.rid
                WHERE n.s IS DISTINCT FROM p.s"""
            changed = {r[0] for r in conn.execute(diff_sql).fetchall()} - python_rids
        # The records this mapping cannot vouch for come first: they decide the counts.
        order = sorted(delegated_new) + sorted(python_rids - delegated_new)
    deadline = None if python_budget is None else time.perf_counter() + python_budget
    done = 0
    for start in range(0, len(order), 64):
        if deadline is not None and time.perf_counter() > deadline:
            break
        chunk = samples.records(*key, order[start:start + 64])
        _decide_in_python(figures, mapping, saved, chunk, delegated_new, tenant_id, changed,
                          cache.outcomes.setdefault((key, version), {}))
        done += len(chunk)
    figures.checked_by_python = done
    figures.unchecked = len([rid for rid in order[done:] if rid in delegated_new])
    figures.changed = sorted(changed)
    return figures


def _events_of(mapping: CompiledMapping, record: Any, tenant_id: str, rid: int | None = None,
               memo: dict | None = None) -> tuple[str, Any]:
    """('mapped'|'filtered', events as JSON) or ('rejected', reason) under the reference engine."""
    if memo is not None and rid is not None:
        memo_key = (mapping.text, tenant_id, rid)
        found = memo.get(memo_key)
        if found is None:
            found = _events_of(mapping, record, tenant_id)
            memo[memo_key] = found
            if len(memo) > 200_000:
                memo.pop(next(iter(memo)))
        return found
    try:
        events = map_record(mapping, record, tenant_id)
    except IntegrationsError as err:
        return "rejected", err.message
    except RecursionError:
        return "rejected", "record is nested too deeply to map"
    if not events:
        return "filtered", []
    return "mapped", [e.to_json_dict(with_ingested_at=False) for e in events]


def _decide_in_python(figures: WholeSetFigures, mapping: CompiledMapping, saved: CompiledMapping | None,
                      checked: list[tuple[int, Any]], delegated_new: set[int], tenant_id: str,
                      changed: set[int], memo: dict | None = None) -> None:
    by_output = {o.name: o for o in figures.outputs}
    for rid, record in checked:
        status, value = _events_of(mapping, record, tenant_id)
        if rid in delegated_new:
            if status == "rejected":
                figures.rejected += 1
                figures.rejection_reasons[value] = figures.rejection_reasons.get(value, 0) + 1
            elif status == "filtered":
                figures.filtered += 1
            else:
                figures.mapped += 1
                _python_coverage(mapping, record, by_output)
        if saved is not None:
            if (status, value) != _events_of(saved, record, tenant_id, rid, memo):
                changed.add(rid)


def _python_coverage(mapping: CompiledMapping, record: Any, by_output: dict[str, OutputFigures]) -> None:
    for out in mapping.outputs:
        figures = by_output[out.name]
        for scope in output_scopes(out, record):
            figures.events += 1
            for cov in figures.fields:
                try:
                    value = out.fields[cov.field].search(scope)
                except Exception:  # noqa: BLE001 - the record mapped, so this cannot fail; be safe anyway
                    value = None
                if value is not None:
                    cov.set += 1


def _with_engine(samples: SampleSet, key: SampleKey, mapping: CompiledMapping, tenant_id: str,
                 saved: CompiledMapping | None) -> WholeSetFigures:
    """The slow, plain path: every record through the reference engine."""
    engine = get_engine("python")
    figures = WholeSetFigures(records=samples.count(*key), engine=engine.name, compared=saved is not None)
    figures.outputs = [OutputFigures(o.name, o.spec.kind, 0, [FieldCoverage(o.name, n, e.text) for n, e in o.fields.items()])
                       for o in mapping.outputs]
    batch = samples.records(*key)
    figures.checked_by_python = len(batch)
    changed: set[int] = set()
    _decide_in_python(figures, mapping, saved, batch, {rid for rid, _ in batch}, tenant_id, changed)
    figures.changed = sorted(changed)
    figures.actions = {}
    for _rid, record in batch:
        if isinstance(record, dict) and "action" in record:
            name = record["action"] if isinstance(record["action"], str) else json.dumps(record["action"])
            figures.actions[name] = figures.actions.get(name, 0) + 1
    return figures


__all__ = ["FieldCoverage", "OutputFigures", "WholeSet", "WholeSetFigures", "read_projection", "whole_set_figures"]
