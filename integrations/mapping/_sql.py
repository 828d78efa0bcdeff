"""The compiled engine: a mapping's JMESPath becomes DuckDB SQL, run over a batch of records at once.

`SqlEngine.map` returns exactly what `PythonEngine.map` returns. Each output becomes one query
over the batch (`for_each` an `unnest` with `generate_subscripts`) that computes every field of every
event; a thin Python pass applies the event rules of `_engine._build_event` to those values. A
record goes to the Python engine whole when the SQL cannot vouch for the exact result: a compiled
guard failed (a type the function rejects, non-ASCII text under a regex, a float to print...), or
the event rules would reject it. So rejections are always the reference engine's own.

`_sql_file.map_file` is the fast path for big inputs: JSON Lines streamed in segments, events built and
upserted into the store by SQL (`_sql_store`), bounded memory. `explain` says which expressions run compiled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
from jmespath.visitor import TreeInterpreter
from pydantic import ValidationError

from integrations.errors import IntegrationsError
from integrations.events import CanonicalEvent
from integrations.mapping._compile import CompiledMapping, CompiledOutput
from integrations.mapping._engine import MapResult, PythonEngine, event_data, field_parts, hint_entries, link_entry
from integrations.mapping._sql_compile import ERROR_MARK, Compiler, V, _and, install_macros
from integrations.mapping._values import as_text_list
from integrations.mapping.functions import OPTIONS

try:  # duckdb >= 1.4 moved the type objects
    from duckdb.sqltypes import VARCHAR as _VARCHAR
except ImportError:  # pragma: no cover - older duckdb
    from duckdb.typing import VARCHAR as _VARCHAR

BATCH_SIZE = 20_000
# Rows per Arrow chunk handed to DuckDB: it schedules one task per chunk, so a batch registered as
# one chunk would use one core.
CHUNK_ROWS = 2048
# Below this many records DuckDB's planning (tens of milliseconds per output) costs more than
# mapping them in Python: such calls go to the Python engine, whose result is the reference anyway.
PYTHON_BELOW = 32
_FALLBACK_NODES: dict[str, dict[str, Any]] = {}
_INTERPRETER = TreeInterpreter(OPTIONS)


# What `_assemble` raises when the event rules reject SQL's values: the record goes to the Python
# engine, whose rejection (with its field and expression) is the one reported.
ASSEMBLY_ERRORS = (IntegrationsError, ValidationError, ValueError, TypeError)


def _jmes_eval(keys: pa.Array, scopes: pa.Array) -> pa.Array:
    """The Python UDF behind every fallback node: evaluate the node on its current value."""
    out: list[str | None] = []
    for key, text in zip(keys.to_pylist(), scopes.to_pylist()):
        try:
            value = None if text is None else json.loads(text)
            result = _INTERPRETER.visit(_FALLBACK_NODES[key], value)
            out.append(None if result is None else
                       json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
        except Exception:  # noqa: BLE001 - any error means: let the Python engine decide
            out.append(ERROR_MARK)
    return pa.array(out, pa.string())


def _py_from_json(texts: pa.Array) -> pa.Array:
    """`from_json()` with Python's own JSON rules; ERROR_MARK where json.loads raises."""
    out: list[str | None] = []
    for text in texts.to_pylist():
        if text is None:
            out.append(None)
            continue
        try:
            value = json.loads(text)
            out.append(None if value is None else
                       json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
        except (ValueError, RecursionError):
            out.append(ERROR_MARK)
    return pa.array(out, pa.string())


def chunked(table: pa.Table) -> pa.Table:
    """The same table in chunks of CHUNK_ROWS rows (zero-copy slices)."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=CHUNK_ROWS), table.schema)


def connect(database: str = ":memory:", conn: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the engine's macros and its fallback UDF."""
    conn = conn if conn is not None else duckdb.connect(database)
    install_macros(conn)
    try:
        conn.create_function("_py_udf_jmes_eval", _jmes_eval, [_VARCHAR, _VARCHAR], _VARCHAR, type="arrow", null_handling="special", side_effects=False)
        conn.create_function("_py_udf_from_json", _py_from_json, [_VARCHAR], _VARCHAR, type="arrow",
                             side_effects=False)
    except duckdb.CatalogException:
        pass  # already there on this connection
    return conn


@dataclass
class ExprPlan:
    """One expression of an output: where it feeds, its compiled value, and why it falls back."""

    field: str
    text: str
    value: V
    reasons: list[str]


@dataclass
class OutputPlan:
    """An output compiled to one SQL query over `(rid, rec)`."""

    out: CompiledOutput
    compiler: Compiler
    when: V | None
    for_each: V | None
    fields: list[tuple[str, V]]
    severity: V
    severity_ok: str | None
    hints: list[V]
    links: list[tuple[V, V | None, list[V]]]
    exprs: list[ExprPlan] = field(default_factory=list)
    fe_type: str = ""

    # -- SQL -------------------------------------------------------------------------------------

    def event_values(self) -> list[V]:
        """Every value the event rules need, in the order `_assemble` reads them."""
        values = [v for _name, v in self.fields] + [self.severity] + list(self.hints)
        for url, desc, meta in self.links:
            values.append(url)
            if desc is not None:
                values.append(desc)
            values.extend(meta)
        return values

    def scope_ok(self) -> str:
        oks = [v.ok for v in self.event_values()] + [self.severity_ok]
        return f"coalesce({_and(*oks) or 'true'}, false)"

    def relation(self, source: str, held: bool = False) -> str:
        """CTEs ending in `scopes`: one row per (record, element) that makes an event, plus `bad` rows.

        With `held`, `source` also gives `held` (a line SQL must not read: its `rec` is NULL, and
        it comes out as one `bad` row) and `line` (the text as read, passed through).
        """
        c = self.compiler
        ctes = [f"s0 AS (SELECT rid, rec{', held, line' if held else ''} FROM {source})"]
        prev = "s0"

        def stage(items: list[str], extra: str = "") -> None:
            nonlocal prev
            name = f"s{len(ctes)}"
            cols = (", " + ", ".join(items)) if items else ""
            ctes.append(f"{name} AS (SELECT *{cols} FROM {prev}{extra})")
            prev = name

        for items in c.stages.stage_selects(1):
            if items:
                stage(items)
        when_truthy = c.truthy(self.when) if self.when is not None else "true"
        when_ok = f"coalesce({self.when.ok}, false)" if self.when is not None and self.when.ok else "true"
        if self.for_each is None:
            not_ok = f"(held OR NOT {when_ok})" if held else f"NOT {when_ok}"
            stage([f"{not_ok} AS bad"], f" WHERE {not_ok} OR {when_truthy}")
            stage(["0::BIGINT AS pos"])
        else:
            fe = c.to_json(self.for_each)
            fe_ok = f"coalesce({fe.ok}, false)" if fe.ok else "true"
            all_ok = f"({'NOT held AND ' if held else ''}{when_ok} AND (NOT {when_truthy} OR ({fe_ok} AND {self.fe_type} IN ('a', 'n'))))"
            items = (f"CASE WHEN NOT {all_ok} THEN [NULL::JSON] WHEN {when_truthy} AND {self.fe_type} = 'a' "
                     f"THEN from_json({fe.sql}, '[\"JSON\"]') ELSE []::JSON[] END AS items")
            stage([f"NOT {all_ok} AS bad", items])
            name = f"s{len(ctes)}"
            # Unnest in the select list (not a LATERAL join: that would hash the outer rows).
            ctes.append(f"{name} AS (SELECT * EXCLUDE (items), unnest(items) AS item, "
                        f"generate_subscripts(items, 1) AS pos FROM {prev})")
            prev = name
            for items in c.stages.stage_selects(2):
                if items:
                    stage(items)
        ctes.append(f"scopes AS (SELECT * FROM {prev})")
        return "WITH " + ",\n".join(ctes)

    def values_query(self, source: str) -> str:
        listed = ", ".join(f"CAST({Compiler.to_json(v).sql} AS JSON)" for v in self.event_values())
        return (self.relation(source) +
                f"\nSELECT rid, pos, bad, {self.scope_ok()} AS ok, to_json([{listed}]::JSON[]) AS vals "
                f"FROM scopes ORDER BY rid, pos")


def plan_output(out: CompiledOutput) -> OutputPlan:
    """Compile every expression of an output into one Compiler (shared hoisted columns)."""
    c = Compiler()
    exprs: list[ExprPlan] = []

    def compile_expr(name: str, expr, scope: V) -> V:
        before = len(c.reasons)
        seen = set(c.fallbacks)
        value = c.compile(expr.parsed.parsed, scope)
        new = [c.fallbacks[k].reason for k in c.fallbacks if k not in seen]
        reasons = list(dict.fromkeys(new + c.reasons[before:]))
        exprs.append(ExprPlan(name, expr.text, value, reasons))
        for key, node in c.fallbacks.items():
            _FALLBACK_NODES.setdefault(key, node.node)
        return value

    record = Compiler.record_scope()
    when = compile_expr("when", out.when, record) if out.when is not None else None
    for_each = compile_expr("for_each", out.for_each, record) if out.for_each is not None else None
    scope = Compiler.pair_scope() if out.for_each is not None else record
    fields = [(name, compile_expr(name, expr, scope)) for name, expr in out.fields.items()]
    # Severity: the first rule whose condition is truthy; later conditions only matter if reached.
    whens, oks = [], []
    level_else = "'info'"
    for i, (cond, level) in enumerate(out.severity):
        if cond is None:
            level_else = f"'{level}'"
            break
        v = compile_expr(f"severity[{i}].when", cond, scope)
        whens.append((c.truthy(v), level))
        oks.append((v.ok, c.truthy(v)))
    sev_sql = "CASE " + " ".join(f"WHEN {t} THEN '{lvl}'" for t, lvl in whens) + f" ELSE {level_else} END" \
        if whens else level_else
    severity_ok: str | None = None
    for ok, truthy in reversed(oks):
        if ok is None and severity_ok is None:
            continue
        if ok is None:
            severity_ok = f"({truthy} OR {severity_ok})"
        elif severity_ok is None:
            severity_ok = ok
        else:
            severity_ok = f"({ok} AND ({truthy} OR {severity_ok}))"
    severity = V(sev_sql, "str", None, 2 if out.for_each is not None else 1, 99)
    hints = [compile_expr(f"correlation_hints[{i}].value", expr, scope) for i, (_t, expr, _c) in enumerate(out.hints)]
    links = []
    for i, (_t, url, desc, meta) in enumerate(out.links):
        u = compile_expr(f"evidence_links[{i}].url", url, scope)
        d = compile_expr(f"evidence_links[{i}].description", desc, scope) if desc is not None else None
        m = [compile_expr(f"evidence_links[{i}].metadata.{k}", e, scope) for k, e in meta.items()]
        links.append((u, d, m))
    fe_type = c.jt(c.to_json(for_each)) if for_each is not None else ""
    return OutputPlan(out, c, when, for_each, fields, severity, severity_ok, hints, links, exprs, fe_type)


def plan_mapping(mapping: CompiledMapping) -> list[OutputPlan]:
    return [plan_output(out) for out in mapping.outputs]


def explain(mapping: CompiledMapping) -> list[tuple[str, str, str, str]]:
    """(output, field, 'compiled' | 'fallback', reason) for every expression of a mapping.

    `fallback` means some part of the expression runs in Python (through a UDF) on every record;
    `compiled` expressions still hand a record to Python when a run-time guard fails (see
    `_sql_compile`), which `reason` notes where it applies.
    """
    rows = []
    for plan in plan_mapping(mapping):
        for expr in plan.exprs:
            if expr.reasons:
                rows.append((plan.out.name, expr.field, "fallback", "; ".join(expr.reasons)))
            else:
                rows.append((plan.out.name, expr.field, "compiled", ""))
    return rows


def _assemble(plan: OutputPlan, vals: list[Any], tenant_id: str, plugin: str) -> CanonicalEvent:
    """`_engine._build_event` on values computed by SQL (in `event_values` order); a RecordError means
    the Python engine decides the record."""
    out = plan.out
    n = len(plan.fields)
    values = dict(zip(out.fields.keys(), vals[:n]))
    parts = field_parts(out, values)
    severity = vals[n]
    k = n + 1
    hints = [hint for (hint_type, _expr, confidence), value in zip(out.hints, vals[k:k + len(plan.hints)])
             for hint in hint_entries(hint_type, value, confidence)]
    k += len(plan.hints)
    links = []
    for link_type, _url, desc_expr, meta in out.links:
        url = vals[k]
        k += 1
        description = None
        if desc_expr is not None:
            description = vals[k]
            k += 1
        metas = vals[k:k + len(meta)]
        k += len(meta)
        if url is None or url == "":
            continue
        links.append(link_entry(link_type, url, description,
                                {key: v for key, v in zip(meta.keys(), metas) if v is not None}))
    data = event_data(out, tenant_id, plugin, severity=severity,
                      resource_ids=as_text_list(values.get("resource_ids"), "resource_ids"),
                      hints=hints, links=links, **parts)
    return CanonicalEvent.model_validate(data)


def record_texts(records: list[Any]) -> list[str | None]:
    """Records as compact JSON text for DuckDB; None where only Python can read the value."""
    texts: list[str | None] = []
    for record in records:
        try:
            text = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            text.encode("utf-8")
        except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
            text = None
        texts.append(text)
    return texts


class SqlEngine:
    """The compiled engine: SQL over batches of records, the Python engine for what SQL can't vouch for."""

    name = "sql"

    def __init__(self, *, batch_size: int = BATCH_SIZE, python_below: int = PYTHON_BELOW) -> None:
        self.batch_size = batch_size
        self.python_below = python_below
        self.sql_runs = 0  # SQL batches run (for tests)
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._plans: dict[int, tuple[CompiledMapping, list[OutputPlan]]] = {}
        self.delegated = 0  # records handed to the Python engine (for tests and the benchmark)

    def plans(self, mapping: CompiledMapping) -> list[OutputPlan]:
        cached = self._plans.get(id(mapping))
        if cached is None or cached[0] is not mapping:
            cached = (mapping, plan_mapping(mapping))
            self._plans[id(mapping)] = cached
        return cached[1]

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            self._conn = connect()
        return self._conn

    def map(self, mapping: CompiledMapping, records: Iterable[Any], *, tenant_id: str,
            start_index: int = 0) -> MapResult:
        records = records if isinstance(records, list) else list(records)
        if len(records) < self.python_below:
            return PythonEngine().map(mapping, records, tenant_id=tenant_id, start_index=start_index)
        result = MapResult()
        with self._lock:
            for start in range(0, len(records), self.batch_size):
                chunk = records[start:start + self.batch_size]
                result.extend(self._map_chunk(mapping, chunk, tenant_id, start_index + start))
        return result

    def _map_chunk(self, mapping: CompiledMapping, chunk: list[Any], tenant_id: str, first: int) -> MapResult:
        plans = self.plans(mapping)
        texts = record_texts(chunk)
        events: list[list[CanonicalEvent] | None] = [[] if t is not None else None for t in texts]
        try:
            self._run_sql(plans, texts, events, tenant_id, mapping.plugin)
        except duckdb.Error:
            events = [None] * len(chunk)  # anything SQL could not run: Python decides every record
        result = MapResult()
        python = PythonEngine()
        for offset, (record, mine) in enumerate(zip(chunk, events)):
            if mine is None:
                self.delegated += 1
                result.extend(python.map(mapping, [record], tenant_id=tenant_id, start_index=first + offset))
                continue
            result.read += 1
            if mine:
                result.mapped += 1
                result.events.extend(mine)
            else:
                result.filtered += 1
        return result

    def _run_sql(self, plans: list[OutputPlan], texts: list[str | None], events: list, tenant_id: str,
                 plugin: str) -> None:
        conn = self.conn
        self.sql_runs += 1
        rids = [i for i, t in enumerate(texts) if t is not None]
        table = pa.table({"rid": pa.array(rids, pa.int64()),
                          "rec": pa.array([texts[i] for i in rids], pa.string())})
        conn.register("_sql_batch", chunked(table))
        try:
            for plan in plans:
                rows = conn.execute(plan.values_query("_sql_batch")).fetchall()
                for rid, _pos, bad, ok, vals in rows:
                    mine = events[rid]
                    if mine is None:
                        continue
                    if bad or not ok:
                        events[rid] = None
                        continue
                    try:
                        mine.append(_assemble(plan, json.loads(vals), tenant_id, plugin))
                    except ASSEMBLY_ERRORS:
                        events[rid] = None
        finally:
            conn.unregister("_sql_batch")


__all__ = ["SqlEngine", "connect", "explain", "plan_mapping"]  # map_file: see _sql_file
