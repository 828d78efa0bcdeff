"""JMESPath ASTs compiled to DuckDB SQL with JMESPath's null, truthiness and error rules.

Every compiled value (`V`) carries its SQL, a static kind, and `ok`: a SQL condition that holds
when evaluating the expression could not raise in the Python engine and the SQL result is known
to be exactly the Python one. Where `ok` is false for a record, the SQL engine hands that record
to the Python engine, so rejections and every corner case stay the reference engine's.

Kinds: `json` (a DuckDB JSON value; SQL NULL and JSON `null` are both JMESPath null), `str`
(VARCHAR), `int` (BIGINT/HUGEINT), `bool` (BOOLEAN); SQL NULL is null in all of them.

Nodes outside the subset compile to a call of the `jmes_eval` Python UDF on the node's current
value (a per-expression fallback), and the reason is kept for `integrations validate --explain`.
Sub-expressions that do real work are hoisted into columns of staged CTEs (deduplicated by their
SQL text), so a value used several times, or by several fields, is computed once per row.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from integrations.mapping._sql_regex import Unsupported, to_re2


# Macros every connection of the SQL engine defines (see `install_macros`).
MACROS = [
    # The JMESPath type of a JSON value, read from its first character: every JSON text the engine
    # handles is minified (DuckDB's writer, json.dumps with compact separators), so this is exact
    # and much cheaper than parsing the value again. (Few nodes: planning time grows with them.)
    # Type tags: s string, o object, a array, b boolean, n null, i integer, d other number.
    # The number test runs only on values that start like a number (CASE evaluates lazily; an
    # AND in a projection would scan every value's whole text).
    # ord() of the first character: `v[1]` and left() were 7 times slower (they count characters),
    # and jt() runs on nearly every value.
    ("CREATE OR REPLACE TEMP MACRO jt_of(o, v) AS CASE WHEN o = 34 THEN 's' WHEN o = 123 THEN 'o' "
     "WHEN o = 91 THEN 'a' WHEN o = 116 OR o = 102 THEN 'b' WHEN o = 110 THEN 'n' "
     "WHEN o = 45 OR (o >= 48 AND o <= 57) THEN CASE WHEN contains(CAST(v AS VARCHAR), '.') "
     "OR contains(CAST(v AS VARCHAR), 'e') OR contains(CAST(v AS VARCHAR), 'E') THEN 'd' ELSE 'i' END "
     "ELSE coalesce(translate(left(CAST(v AS VARCHAR), 1), '\"{[tfn', 'soabbn'), 'n') END"),
    ("CREATE OR REPLACE TEMP MACRO jt(v) AS CASE WHEN v IS NULL THEN 'n' "
     "ELSE jt_of(ord(CAST(v AS VARCHAR)), v) END"),
    "CREATE OR REPLACE TEMP MACRO jtruthy(v) AS (v IS NOT NULL AND v::VARCHAR NOT IN ('null', 'false', '\"\"', '[]', '{}'))",
    "CREATE OR REPLACE TEMP MACRO jnull(v) AS (v IS NULL OR v::VARCHAR = 'null')",
    ("CREATE OR REPLACE TEMP MACRO jstr(v) AS CASE WHEN ord(CAST(v AS VARCHAR)) = 34 THEN CASE WHEN contains(CAST(v AS VARCHAR), '\\') "
     "THEN CAST(v AS JSON)->>'$' ELSE CAST(v AS VARCHAR)[2:-2] END END"),
    # An integer (a Python int) as HUGEINT; NULL for anything else (floats go to Python).
    "CREATE OR REPLACE TEMP MACRO jint2(v, t) AS CASE WHEN t = 'i' THEN TRY_CAST(CAST(v AS VARCHAR) AS HUGEINT) END",
    "CREATE OR REPLACE TEMP MACRO jint(v) AS jint2(v, jt(v))",
    "CREATE OR REPLACE TEMP MACRO isascii(s) AS (s IS NULL OR strlen(s) = length(s))",
    # Python's repr() of a float where DuckDB writes the same digits (plain notation, >= 0.001),
    # and how format() prints it (an integral float without '.0').
    ("CREATE OR REPLACE TEMP MACRO pyfloat(s) AS CASE WHEN regexp_full_match(s, '-?[0-9]{1,15}[.][0-9]+') "
     "AND NOT regexp_matches(s, '^-?0[.]000') THEN s END"),
    ("CREATE OR REPLACE TEMP MACRO pyfloattext(s) AS CASE WHEN s = '-0.0' THEN '0' WHEN suffix(s, '.0') "
     "THEN left(s, -2) ELSE s END"),
    "CREATE OR REPLACE TEMP MACRO jfloat2(v, t) AS CASE WHEN t = 'd' THEN pyfloat(CAST(v AS VARCHAR)) END",
    "CREATE OR REPLACE TEMP MACRO jfloat(v) AS jfloat2(v, jt(v))",
    # How a value reads in format()/concat(): NULL when it needs Python (floats, lists, objects).
    ("CREATE OR REPLACE TEMP MACRO jtext2(v, t) AS CASE WHEN t = 'n' THEN '' WHEN t = 's' THEN jstr(v) "
     "WHEN t = 'b' THEN CAST(v AS VARCHAR) WHEN t = 'i' THEN CAST(jint2(v, t) AS VARCHAR) "
     "WHEN t = 'd' THEN pyfloattext(pyfloat(CAST(v AS VARCHAR))) END"),
    "CREATE OR REPLACE TEMP MACRO jtext(v) AS jtext2(v, jt(v))",
]

_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?")
_UDF = "_py_udf_"  # the UDFs' names start with it (see _sql.connect)
ERROR_MARK = "!"  # what jmes_eval returns when Python raised (never valid JSON text)


class Fallback(Exception):
    """This node is outside the compiled subset; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class V:
    """A compiled value: SQL text, static kind, the exactness condition and where it can be hoisted."""

    sql: str
    kind: str = "json"
    ok: str | None = None
    tier: int = 0  # 0: constant, 1: record level, 2: element (for_each) level
    depth: int = 0  # the stage whose columns it needs
    local: bool = False  # uses a lambda variable: cannot be hoisted
    pair: bool = False  # the {item, record} scope object of a for_each output


NULL = V("NULL::JSON", "json")


def sql_str(text: str) -> str:
    if "\x00" in text:
        raise Fallback("a string with a NUL character")
    return "'" + text.replace("'", "''") + "'"


def _and(*conds: str | None) -> str | None:
    parts = [c for c in conds if c is not None and c != "true"]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return "(" + " AND ".join(f"({p})" for p in parts) + ")"


def _meta(*vals: V, local: bool = False) -> dict[str, Any]:
    tier = max([v.tier for v in vals] or [0])
    depth = max([v.depth for v in vals if v.tier == tier] or [0])
    return {"tier": tier, "depth": depth, "local": local or any(v.local for v in vals)}


def _path_text(steps: list[str | int]) -> str:
    out = "$"
    for step in steps:
        if isinstance(step, int):
            out += f"[{step}]" if step >= 0 else f"[#{step}]"
        else:
            if any(c in step for c in '"\\') or any(ord(c) < 32 for c in step) or step == "":
                raise Fallback(f"a key DuckDB paths cannot spell: {step!r}")
            out += f'."{step}"'
    return out


@dataclass
class Binding:
    name: str
    sql: str
    ok_sql: str | None
    tier: int
    depth: int  # the stage it is computed in


@dataclass
class Stages:
    """Columns hoisted per (tier, stage), and the JSON paths read from each base column."""

    prefix: str
    bindings: list[Binding] = field(default_factory=list)
    by_text: dict[tuple[str, str | None], Binding] = field(default_factory=dict)
    paths: dict[str, list[str]] = field(default_factory=lambda: {"rec": [], "item": []})

    def path(self, base: str, steps: list[str | int], tier: int) -> V:
        text = _path_text(steps)
        paths = self.paths[base]
        if text not in paths:
            paths.append(text)
        index = paths.index(text) + 1
        return V(f"{self.prefix}{base}_p[{index}]", "json", None, tier, 1)

    def hoist(self, v: V) -> V:
        if v.local or v.tier == 0:
            return v
        if _COLUMN.fullmatch(v.sql) and (v.ok is None or _COLUMN.fullmatch(v.ok)):
            return v  # already a column: an alias would only add a stage
        key = (v.sql, v.ok)
        found = self.by_text.get(key)
        if found is None:
            name = f"{self.prefix}b{len(self.bindings)}"
            found = Binding(name, v.sql, v.ok, v.tier, max(v.depth, 1) + 1)
            self.bindings.append(found)
            self.by_text[key] = found
        return V(found.name, v.kind, f"{found.name}_ok" if v.ok is not None else None, v.tier, found.depth)

    def stage_selects(self, tier: int) -> list[str]:
        """The extra SELECT items of each stage of a tier, stage 1 first (the path reads)."""
        base = "rec" if tier == 1 else "item"
        stages: list[list[str]] = []
        if self.paths[base]:
            listed = ", ".join(sql_str(p) for p in self.paths[base])
            stages.append([f"json_extract({base}, [{listed}]) AS {self.prefix}{base}_p"])
        else:
            stages.append([])
        top = max([b.depth for b in self.bindings if b.tier == tier] or [1])
        for depth in range(2, top + 1):
            items = []
            for b in self.bindings:
                if b.tier == tier and b.depth == depth:
                    items.append(f"{b.sql} AS {b.name}")
                    if b.ok_sql is not None:
                        items.append(f"coalesce({b.ok_sql}, false) AS {b.name}_ok")
            stages.append(items)
        return stages


@dataclass
class FallbackNode:
    key: str
    node: dict[str, Any]
    reason: str


class Compiler:
    """Compiles the expressions of one output into SQL over `rec` (and `item` inside for_each)."""

    def __init__(self, prefix: str = "") -> None:
        self.stages = Stages(prefix)
        self.fallbacks: dict[str, FallbackNode] = {}
        self.reasons: list[str] = []
        self._lambda = 0

    # -- scopes --------------------------------------------------------------------------------

    @staticmethod
    def record_scope() -> V:
        return V("rec", "json", None, 1, 0)

    @staticmethod
    def pair_scope() -> V:
        return V("json_object('item', item, 'record', json(rec))", "json", None, 2, 0, pair=True)

    # -- entry ----------------------------------------------------------------------------------

    def compile(self, ast: dict[str, Any], cur: V) -> V:
        """Compile a whole expression. When any node of it is outside the subset, the whole
        expression runs in Python (one UDF call per row, with Python's own short cuts) rather than
        splicing Python calls into SQL, where each use of a value would call Python again."""
        reasons = self._fallback_reasons(ast, cur)
        if reasons:
            guarded = self._guarded(ast, cur, reasons)
            return guarded if guarded is not None else self.fallback(ast, cur, reasons)
        scratch = Compiler(prefix="scratch_")
        scratch.node(ast, cur)
        for reason in scratch.reasons:
            self.note(reason)
        return self.node(ast, cur)

    @staticmethod
    def _fallback_reasons(ast: dict[str, Any], cur: V) -> str:
        """Why some node of `ast` is outside the subset ('' when all of it compiles)."""
        scratch = Compiler(prefix="scratch_")
        scratch.node(ast, cur)
        return "; ".join(dict.fromkeys(f.reason for f in scratch.fallbacks.values()))

    def _guarded(self, ast: dict[str, Any], cur: V, reasons: str) -> V | None:
        """`a || rest` (or `a && rest`) where `a` compiles: SQL decides `a`, and Python is called only
        for the records where `rest` decides the result (the usual shape of a mapping that reads
        one payload variant directly and decodes another: `event || from_json(gunzip_base64(...))`).
        `rest` runs in Python whole, as JMESPath would evaluate it after `a`. None: no compiled head."""
        kind = ast["type"]
        if kind not in ("or_expression", "and_expression"):
            return None
        terms = self._chain(ast, kind)
        head = 0
        while head < len(terms) - 1 and not self._fallback_reasons(terms[head], cur):
            head += 1
        if head == 0:
            return None
        rest = terms[head]
        for term in terms[head + 1:]:
            rest = {"type": kind, "children": [rest, term]}
        compiled = [self.hoist(self.compile(term, cur)) for term in terms[:head]]
        picks = (lambda t: self.truthy(t)) if kind == "or_expression" else (lambda t: f"NOT {self.truthy(t)}")
        needed = " AND ".join(f"NOT coalesce({picks(t)}, false)" for t in compiled)
        tail = self.fallback(rest, cur, reasons + " (only where the compiled head does not decide)",
                             needed=needed, after=compiled)
        return self._first(compiled + [tail], picks)

    # -- helpers --------------------------------------------------------------------------------

    def fresh(self) -> str:
        self._lambda += 1
        return f"x{self._lambda}"

    def hoist(self, v: V) -> V:
        return self.stages.hoist(v)

    def note(self, reason: str) -> None:
        """A part of the expression that runs in Python (reported by explain)."""
        if reason not in self.reasons:
            self.reasons.append(reason)

    @staticmethod
    def to_json(v: V) -> V:
        if v.kind == "json":
            return v
        if v.kind in ("str", "int", "bool"):
            return V(f"to_json({v.sql})", "json", v.ok, v.tier, v.depth, v.local)
        raise AssertionError(v.kind)

    @staticmethod
    def truthy(v: V) -> str:
        if v.kind == "json":
            return f"jtruthy({v.sql})"
        if v.kind == "str":
            return f"coalesce({v.sql} <> '', false)"
        if v.kind == "bool":
            return f"coalesce({v.sql}, false)"
        return f"({v.sql} IS NOT NULL)"

    @staticmethod
    def isnull(v: V) -> str:
        if v.kind == "json":
            return f"jnull({v.sql})"
        return f"({v.sql} IS NULL)"

    def fx(self, macro: str, v: V) -> str:
        """`macro(v)` as a hoisted column where it can be: a helper macro expands to a large
        expression, and planning time grows with the expression, so each is computed once."""
        sql = f"{macro}({v.sql})"
        if v.local or v.tier == 0:
            return sql
        return self.hoist(V(sql, "str", None, **_meta(v))).sql

    def jt(self, v: V) -> str:
        return self.fx("jt", v)

    def jstr(self, v: V) -> str:
        return self.fx("jstr", v)

    def jint(self, v: V) -> str:
        return self.fx2("jint2", v)

    def fx2(self, macro: str, v: V) -> str:
        """A helper macro taking the value and its (hoisted) type."""
        sql = f"{macro}({v.sql}, {self.jt(v)})"
        if v.local or v.tier == 0:
            return sql
        return self.hoist(V(sql, "str", None, **_meta(v))).sql

    def as_str(self, v: V, *, nullable: bool) -> tuple[str, str | None]:
        """The value as VARCHAR where a function takes a string, and the type check."""
        if v.kind == "str":
            return v.sql, (None if nullable else f"({v.sql} IS NOT NULL)")
        if v.kind == "json":
            allowed = "('s', 'n')" if nullable else "('s')"
            return self.jstr(v), f"{self.jt(v)} IN {allowed}"
        return "NULL::VARCHAR", (f"({v.sql} IS NULL)" if nullable else "false")

    def text_of(self, v: V) -> tuple[str, str | None]:
        """How `format`/`concat` print a value (functions._text), and when SQL can do it."""
        if v.kind == "str":
            return f"coalesce({v.sql}, '')", None
        if v.kind == "int":
            return f"coalesce(CAST({v.sql} AS VARCHAR), '')", None
        if v.kind == "bool":
            return f"CASE WHEN {v.sql} THEN 'true' WHEN NOT {v.sql} THEN 'false' ELSE '' END", None
        text = self.fx2("jtext2", v)
        return text, f"({text} IS NOT NULL)"

    # -- nodes ------------------------------------------------------------------------------------

    def node(self, n: dict[str, Any], cur: V) -> V:
        try:
            return self._node(n, cur)
        except Fallback as why:
            return self.fallback(n, cur, why.reason)

    def fallback(self, n: dict[str, Any], cur: V, reason: str, *, needed: str | None = None,
                 after: list[V] = ()) -> V:
        """The node evaluated by the Python UDF; with `needed`, only on the rows where it holds
        (a CASE runs its branch on those rows alone), reading columns of the values `after`."""
        key = hashlib.sha1(json.dumps(n, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.fallbacks[key] = FallbackNode(key, n, reason)
        if reason not in self.reasons:
            self.reasons.append(reason)
        scope = cur if cur.kind == "json" else self.to_json(cur)
        call = f"{_UDF}jmes_eval('{key}', CAST({scope.sql} AS VARCHAR))"
        if needed:
            call = f"CASE WHEN {needed} THEN {call} END"
        raw = self.hoist(V(call, "str", None, **_meta(scope, *after)))
        return V(f"CAST(nullif({raw.sql}, '{ERROR_MARK}') AS JSON)", "json", f"({raw.sql} IS DISTINCT FROM '{ERROR_MARK}')",
                 **_meta(raw))

    def _node(self, n: dict[str, Any], cur: V) -> V:
        kind = n["type"]
        steps = _pure_path(n)
        if steps is not None:
            return self.path(cur, steps)
        method = getattr(self, f"n_{kind}", None)
        if method is None:
            raise Fallback(f"'{kind}' is not compiled to SQL")
        return method(n, cur)

    def path(self, cur: V, steps: list[str | int]) -> V:
        if not steps:
            return cur
        if cur.pair:
            first, rest = steps[0], steps[1:]
            if first == "item":
                return self.path(V("item", "json", None, 2, 0), rest)
            if first == "record":
                return self.path(V("rec", "json", None, 1, 0), rest)
            return NULL
        if cur.kind != "json":
            return NULL
        if cur.sql in ("rec", "item") and not cur.local:
            return self.stages.path(cur.sql, steps, cur.tier)
        return V(f"json_extract({cur.sql}, {sql_str(_path_text(steps))})", "json", cur.ok, **_meta(cur))

    def n_identity(self, n, cur: V) -> V:
        return self.materialize(cur)

    n_current = n_identity

    def materialize(self, cur: V) -> V:
        """The current value as a JSON expression (the scope object, or the record re-read as JSON)."""
        if cur.pair:
            return V(cur.sql, "json", None, 2, 0)
        if cur.sql == "rec" and not cur.local:
            return V("json(rec)", "json", None, 1, 0)
        return cur

    def n_literal(self, n, cur: V) -> V:
        value = n["value"]
        if isinstance(value, bool):
            return V("true" if value else "false", "bool")
        if value is None:
            return NULL
        if isinstance(value, str):
            return V(sql_str(value), "str")
        if isinstance(value, int) and -(2**63) <= value < 2**63:
            return V(f"{value}::BIGINT", "int")
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return V(f"{sql_str(text)}::JSON", "json")

    def n_subexpression(self, n, cur: V) -> V:
        value = cur
        for child in n["children"]:
            value = self.node(child, value)
        return value

    n_pipe = n_subexpression
    n_index_expression = n_subexpression

    def n_field(self, n, cur: V) -> V:
        return self.path(cur, [n["value"]])

    def n_index(self, n, cur: V) -> V:
        return self.path(cur, [n["value"]])

    # -- boolean logic ------------------------------------------------------------------------------

    def _chain(self, n, kind: str) -> list[dict]:
        if n["type"] == kind:
            return self._chain(n["children"][0], kind) + [n["children"][1]]
        return [n]

    def n_or_expression(self, n, cur: V) -> V:
        terms = [self.node(t, cur) for t in self._chain(n, "or_expression")]
        return self._first(terms, lambda t: self.truthy(t))

    def n_and_expression(self, n, cur: V) -> V:
        terms = [self.node(t, cur) for t in self._chain(n, "and_expression")]
        return self._first(terms, lambda t: f"NOT {self.truthy(t)}")

    def _first(self, terms: list[V], picks) -> V:
        """CASE over terms: the first that `picks`, else the last; `ok` follows the short cut."""
        kinds = {t.kind for t in terms}
        if len(kinds) > 1:
            terms = [self.to_json(t) for t in terms]
        terms = [self.hoist(t) if i < len(terms) - 1 else t for i, t in enumerate(terms)]
        kind = terms[0].kind
        whens = " ".join(f"WHEN {picks(t)} THEN {t.sql}" for t in terms[:-1])
        sql = f"(CASE {whens} ELSE {terms[-1].sql} END)"
        ok: str | None = None
        for t in reversed(terms):
            if ok is None:
                ok = t.ok
            elif t.ok is None and ok is not None:
                ok = f"({picks(t)} OR {ok})"
            elif t.ok is not None:
                ok = f"({t.ok} AND ({picks(t)} OR {ok}))" if ok is not None else t.ok
        return self.hoist(V(sql, kind, ok, **_meta(*terms)))

    def n_not_expression(self, n, cur: V) -> V:
        v = self.node(n["children"][0], cur)
        return V(f"(NOT {self.truthy(v)})", "bool", v.ok, **_meta(v))

    # -- comparisons ----------------------------------------------------------------------------

    def n_comparator(self, n, cur: V) -> V:
        a = self.node(n["children"][0], cur)
        b = self.node(n["children"][1], cur)
        op = n["value"]
        meta = _meta(a, b)
        if op in ("eq", "ne"):
            sql, ok = self._equals(a, b)
            if op == "ne":
                sql = f"(NOT {sql})"
            return V(sql, "bool", _and(a.ok, b.ok, ok), **meta)
        sym = {"lt": "<", "gt": ">", "lte": "<=", "gte": ">="}[op]
        if a.kind == b.kind and a.kind in ("int", "str"):
            return V(f"({a.sql} {sym} {b.sql})", "bool", _and(a.ok, b.ok), **meta)
        ja, jb = self.to_json(a), self.to_json(b)
        tx, ty, ix, iy = self.jt(ja), self.jt(jb), self.jint(ja), self.jint(jb)
        sql = (f"(CASE WHEN {ix} IS NOT NULL AND {iy} IS NOT NULL THEN {ix} {sym} {iy} "
               f"WHEN {tx} = 's' AND {ty} = 's' THEN {self.jstr(ja)} {sym} {self.jstr(jb)} END)")
        num = "('i', 'd')"
        bad = (f"({tx} IN {num} AND {ty} IN {num} AND ({ix} IS NULL OR {iy} IS NULL)) "
               f"OR ({tx} IN {num} AND {ty} = 's') OR ({tx} = 's' AND {ty} IN {num})")
        return V(sql, "bool", _and(a.ok, b.ok, f"NOT coalesce({bad}, false)"), **meta)

    def _equals(self, a: V, b: V) -> tuple[str, str | None]:
        """JMESPath `==` (Python equality, with bools never equal to numbers)."""
        if a.kind == b.kind and a.kind in ("str", "int", "bool"):
            return f"({a.sql} IS NOT DISTINCT FROM {b.sql})", None
        if a.kind != "json" and b.kind != "json":
            return f"({a.sql} IS NULL AND {b.sql} IS NULL)", None
        if a.kind != "json":
            a, b = b, a
        x = a.sql
        tx = self.jt(a)
        if b.kind == "str":
            return (f"(CASE WHEN {b.sql} IS NULL THEN jnull({x}) ELSE coalesce({self.jstr(a)} = {b.sql}, false) END)",
                    None)
        if b.kind == "int":
            ix = self.jint(a)
            return (f"(CASE WHEN {b.sql} IS NULL THEN jnull({x}) ELSE coalesce({ix} = {b.sql}, false) END)",
                    f"NOT ({tx} = 'd' AND {ix} IS NULL)")
        if b.kind == "bool":
            return (f"(CASE WHEN {b.sql} IS NULL THEN jnull({x}) "
                    f"ELSE coalesce({tx} = 'b' AND {x}::VARCHAR = CAST({b.sql} AS VARCHAR), false) END)",
                    None)
        y = b.sql
        ty, ix, iy = self.jt(b), self.jint(a), self.jint(b)
        num = "('i', 'd')"
        sql = (f"(CASE WHEN {tx} = 'n' OR {ty} = 'n' THEN {tx} = {ty} "
               f"WHEN {tx} = 's' AND {ty} = 's' THEN {self.jstr(a)} = {self.jstr(b)} "
               f"WHEN {tx} = 'b' AND {ty} = 'b' THEN {x}::VARCHAR = {y}::VARCHAR "
               f"WHEN {tx} IN {num} AND {ty} IN {num} THEN coalesce({ix} = {iy}, false) "
               f"WHEN {tx} = {ty} THEN {x}::VARCHAR = {y}::VARCHAR ELSE false END)")
        ok = (f"NOT coalesce(({tx} IN {num} AND {ty} IN {num} AND ({ix} IS NULL OR {iy} IS NULL)) "
              f"OR ({tx} = {ty} AND {tx} IN ('a', 'o') AND {x}::VARCHAR <> {y}::VARCHAR), false)")
        return sql, ok

    # -- lists and objects ----------------------------------------------------------------------

    def _elements(self, base: V) -> str:
        return f"from_json({base.sql}, '[\"JSON\"]')"

    def _project(self, base: V, rhs: dict | None, cond: dict | None = None) -> V:
        """A projection over a list value: rhs per element, nulls dropped; null when not a list."""
        x = self.fresh()
        elem = V(x, "json", None, base.tier, base.depth, local=True)
        elems = self._elements(base)
        oks = []
        if cond is not None:
            c = self.node(cond, elem)
            elems = f"list_filter({elems}, lambda {x}: {self.truthy(c)})"
            if c.ok is not None:
                oks.append(f"coalesce(list_bool_and(list_transform({self._elements(base)}, "
                           f"lambda {x}: coalesce({c.ok}, false))), true)")
            x2 = self.fresh()
            elem = V(x2, "json", None, base.tier, base.depth, local=True)
            x = x2
        if rhs is None or rhs["type"] == "identity":
            mapped = elems
        else:
            r = self.to_json(self.node(rhs, elem))
            if r.ok is not None:
                oks.append(f"coalesce(list_bool_and(list_transform({elems}, lambda {x}: coalesce({r.ok}, false))), true)")
            mapped = f"list_transform({elems}, lambda {x}: {r.sql})"
        y = self.fresh()
        kept = f"list_filter({mapped}, lambda {y}: NOT jnull({y}))"
        is_list = f"{self.jt(base)} = 'a'"
        ok = _and(base.ok, *[f"(NOT {is_list} OR {o})" for o in oks])
        sql = f"(CASE WHEN {is_list} THEN to_json({kept}) END)"
        return self.hoist(V(sql, "json", ok, **_meta(base)))

    def n_projection(self, n, cur: V) -> V:
        base = self.to_json(self.node(n["children"][0], cur))
        return self._project(base, n["children"][1])

    def n_filter_projection(self, n, cur: V) -> V:
        base = self.to_json(self.node(n["children"][0], cur))
        return self._project(base, n["children"][1], cond=n["children"][2])

    def n_flatten(self, n, cur: V) -> V:
        base = self.to_json(self.node(n["children"][0], cur))
        x = self.fresh()
        merged = (f"flatten(list_transform({self._elements(base)}, lambda {x}: CASE WHEN jt({x}) = 'a' "
                  f"THEN from_json({x}, '[\"JSON\"]') ELSE [{x}] END))")
        sql = f"(CASE WHEN {self.jt(base)} = 'a' THEN to_json({merged}) END)"
        return self.hoist(V(sql, "json", base.ok, **_meta(base)))

    def scope_isnull(self, cur: V) -> str:
        if cur.pair:
            return "false"
        if cur.sql == "rec" and not cur.local:
            return "(trim(rec) = 'null')"
        return self.isnull(cur)

    def n_multi_select_list(self, n, cur: V) -> V:
        items = [self.to_json(self.node(c, cur)) for c in n["children"]]
        listed = ", ".join(f"CAST({i.sql} AS JSON)" for i in items)
        sql = f"(CASE WHEN {self.scope_isnull(cur)} THEN NULL ELSE to_json([{listed}]::JSON[]) END)"
        return self.hoist(V(sql, "json", _and(*[i.ok for i in items]), **_meta(self.materialize(cur), *items)))

    def n_multi_select_dict(self, n, cur: V) -> V:
        keys = [c["value"] for c in n["children"]]
        if len(set(keys)) != len(keys):
            raise Fallback("a multi-select hash with a repeated key")
        items = [self.to_json(self.node(c["children"][0], cur)) for c in n["children"]]
        pairs = ", ".join(f"{sql_str(k)}, CAST({i.sql} AS JSON)" for k, i in zip(keys, items))
        sql = f"(CASE WHEN {self.scope_isnull(cur)} THEN NULL ELSE json_object({pairs}) END)"
        return self.hoist(V(sql, "json", _and(*[i.ok for i in items]), **_meta(self.materialize(cur), *items)))

    # -- functions ------------------------------------------------------------------------------

    def n_function_expression(self, n, cur: V) -> V:
        name = n["value"]
        method = getattr(self, f"f_{name}", None)
        if method is None:
            raise Fallback(f"function {name}() runs in Python")
        return method(n["children"], cur)

    def args(self, children, cur: V) -> list[V]:
        return [self.node(c, cur) for c in children]

    def _fn(self, sql: str, kind: str, args: list[V], *checks: str | None, hoist: bool = True) -> V:
        v = V(sql, kind, _and(*[a.ok for a in args], *checks), **_meta(*args))
        return self.hoist(v) if hoist else v

    @staticmethod
    def _literal_str(node) -> str:
        if node["type"] != "literal" or not isinstance(node["value"], str):
            raise Fallback("a function argument that must be a literal string is not")
        return node["value"]

    def f_length(self, children, cur):
        (v,) = self.args(children, cur)
        if v.kind == "str":
            return self._fn(f"length({v.sql})", "int", [v], f"({v.sql} IS NOT NULL)")
        if v.kind != "json":
            return self._fn("NULL::BIGINT", "int", [v], "false")
        x, t = v.sql, self.jt(v)
        sql = (f"(CASE {t} WHEN 's' THEN length({self.jstr(v)}) WHEN 'a' THEN json_array_length({x}) "
               f"WHEN 'o' THEN len(json_keys({x})) END)")
        return self._fn(sql, "int", [v], f"{t} IN ('s', 'a', 'o')")

    def f_lower(self, children, cur, fn="lower"):
        (v,) = self.args(children, cur)
        s, check = self.as_str(v, nullable=True)
        s = self.hoist(V(s, "str", None, **_meta(v))).sql if v.kind == "json" else s
        return self._fn(f"{fn}({s})", "str", [v], check, f"isascii({s})")

    def f_upper(self, children, cur):
        return self.f_lower(children, cur, fn="upper")

    def f_regex_extract(self, children, cur):
        pattern = self._literal_str(children[1])
        try:
            re2 = to_re2(pattern)
        except Unsupported as why:
            raise Fallback(f"regex {pattern!r}: {why}") from None
        (v,) = self.args(children[:1], cur)
        s, check = self.as_str(v, nullable=True)
        subject = self.hoist(V(s, "str", None, **_meta(v)))
        p = sql_str(re2.pattern)
        extracted = f"regexp_extract({subject.sql}, {p}, {re2.group})"
        if re2.take is not None:  # the subject is ASCII (guarded below): characters are bytes
            extracted = f"left({extracted}, {re2.take})"
        raw = self.hoist(V(extracted, "str", None, **_meta(subject)))
        guards = [check, f"isascii({subject.sql})"]
        if re2.no_final_newline:
            guards.append(f"NOT coalesce(suffix({subject.sql}, chr(10)), false)")
        if re2.never_empty and re2.group_always_set:
            # '' can only mean "no match": no second pass of the pattern over the subject.
            return self._fn(f"nullif({raw.sql}, '')", "str", [v, raw], *guards)
        matched = f"regexp_matches({subject.sql}, {p})"
        sql = (f"(CASE WHEN {raw.sql} <> '' THEN {raw.sql} WHEN {subject.sql} IS NULL THEN NULL "
               f"WHEN {matched} THEN '' END)")
        if not re2.group_always_set:
            guards.append(f"NOT ({raw.sql} = '' AND coalesce({matched}, false))")
        return self._fn(sql, "str", [v, raw], *guards)

    def f_format(self, children, cur):
        template = self._literal_str(children[0])
        parts = template.split("{}")
        args = self.args(children[1:], cur)
        if len(parts) - 1 != len(args):
            raise Fallback("format() placeholders and values differ in number (always rejected)")
        pieces = [sql_str(parts[0])] if parts[0] else []
        checks = []
        for arg, part in zip(args, parts[1:]):
            text, check = self.text_of(arg)
            pieces.append(text)
            checks.append(check)
            if part:
                pieces.append(sql_str(part))
        sql = "concat(" + ", ".join(pieces or ["''"]) + ")"
        return self._fn(sql, "str", args, *checks)

    def f_concat(self, children, cur):
        args = self.args(children, cur)
        pieces, checks = zip(*[self.text_of(a) for a in args]) if args else ((), ())
        return self._fn("concat(" + ", ".join(pieces or ("''",)) + ")", "str", args, *checks)

    def f_replace(self, children, cur):
        v, old, new = self.args(children, cur)
        s, check = self.as_str(v, nullable=True)
        o, check_o = self.as_str(old, nullable=False)
        w, check_n = self.as_str(new, nullable=False)
        return self._fn(f"replace({s}, {o}, {w})", "str", [v, old, new], check, check_o, check_n,
                        f"coalesce({o} <> '', true)")

    def f_split(self, children, cur):
        v, sep = self.args(children, cur)
        s, check = self.as_str(v, nullable=True)
        p, check_p = self.as_str(sep, nullable=False)
        return self._fn(f"to_json(string_split({s}, {p}))", "json", [v, sep], check, check_p,
                        f"coalesce({p} <> '', true)")

    def f_starts_with(self, children, cur, fn="starts_with"):
        v, prefix = self.args(children, cur)
        s, check = self.as_str(v, nullable=False)
        p, check_p = self.as_str(prefix, nullable=False)
        return self._fn(f"{fn}({s}, {p})", "bool", [v, prefix], check, check_p, hoist=False)

    def f_ends_with(self, children, cur):
        return self.f_starts_with(children, cur, fn="suffix")

    def f_contains(self, children, cur):
        subject, search = self.args(children, cur)
        node = children[0]
        strings = _literal_strings(node)
        if strings is not None:
            listed = ", ".join(sql_str(x) for x in strings) or "NULL"
            j = self.to_json(search)
            check = f"NOT {self.scope_isnull(cur)}" if node["type"] == "multi_select_list" else None
            return self._fn(f"coalesce({self.jstr(j)} IN ({listed}), false)", "bool", [j], check, hoist=False)
        s, check = self.as_str(subject, nullable=False)
        t, check_t = self.as_str(search, nullable=False)
        return self._fn(f"contains({s}, {t})", "bool", [subject, search], check, check_t, hoist=False)

    def f_default(self, children, cur):
        v, fb = self.args(children, cur)
        if v.kind != fb.kind:
            v, fb = self.to_json(v), self.to_json(fb)
        return self._fn(f"(CASE WHEN {self.isnull(v)} THEN {fb.sql} ELSE {v.sql} END)", v.kind, [v, fb])

    def f_coalesce(self, children, cur):
        args = self.args(children, cur)
        if not args:
            return NULL
        if len({a.kind for a in args}) > 1:
            args = [self.to_json(a) for a in args]
        args = [self.hoist(a) for a in args]
        whens = " ".join(f"WHEN NOT {self.isnull(a)} THEN {a.sql}" for a in args)
        return self._fn(f"(CASE {whens} END)", args[0].kind, args)

    def f_from_epoch_ms(self, children, cur, scale=1):
        (v,) = self.args(children, cur)
        j = self.to_json(v)
        ms = self.jint(j) if scale == 1 else f"({self.jint(j)} * 1000)"
        ms = self.hoist(V(ms, "int", None, **_meta(j))).sql
        sql = (f"(CASE WHEN {ms} IS NULL THEN NULL WHEN {ms} % 1000 = 0 "
               f"THEN strftime(make_timestamp(CAST({ms} AS BIGINT) * 1000), '%Y-%m-%dT%H:%M:%SZ') "
               f"ELSE strftime(make_timestamp(CAST({ms} AS BIGINT) * 1000), '%Y-%m-%dT%H:%M:%S.%gZ') END)")
        check = (f"(jnull({j.sql}) OR ({ms} IS NOT NULL AND {ms} BETWEEN 0 AND 8589934591999))")
        return self._fn(sql, "str", [j], check)

    def f_from_epoch(self, children, cur):
        return self.f_from_epoch_ms(children, cur, scale=1000)

    def f_to_string(self, children, cur):
        (v,) = self.args(children, cur)
        if v.kind == "str":
            return self._fn(f"coalesce({v.sql}, 'null')", "str", [v], hoist=False)
        j = self.to_json(v)
        x, t = j.sql, self.jt(j)
        sql = (f"(CASE {t} WHEN 'n' THEN 'null' WHEN 's' THEN {self.jstr(j)} "
               f"WHEN 'b' THEN {x}::VARCHAR ELSE coalesce({self.fx2('jfloat2', j)}, CAST({self.jint(j)} AS VARCHAR)) END)")
        return self._fn(sql, "str", [j], f"({sql} IS NOT NULL)")

    def f_join(self, children, cur):
        sep, arr = self.args(children, cur)
        p, check = self.as_str(sep, nullable=False)
        a = self.to_json(arr)
        x = self.fresh()
        elems = self._elements(a)
        all_str = (f"coalesce(list_bool_and(list_transform({elems}, lambda {x}: coalesce(jt({x}) = 's', "
                   f"false))), true)")
        y = self.fresh()
        sql = f"array_to_string(list_transform({elems}, lambda {y}: {y}->>'$'), {p})"
        return self._fn(f"(CASE WHEN {self.jt(a)} = 'a' THEN {sql} END)", "str", [sep, a], check,
                        f"({self.jt(a)} = 'a' AND {all_str})")

    def f_sum(self, children, cur):
        node = children[0]
        if node["type"] == "multi_select_list":
            items = [self.to_json(self.node(c, cur)) for c in node["children"]]
            total = " + ".join(self.jint(i) for i in items) or "0::HUGEINT"
            checks = [f"({self.jint(i)} IS NOT NULL)" for i in items]
            checks.append(f"NOT {self.scope_isnull(cur)}")
            return self._fn(f"CAST(({total}) AS BIGINT)", "int", items, *checks,
                            f"({total}) BETWEEN -9223372036854775808 AND 9223372036854775807")
        (arr,) = self.args(children, cur)
        a = self.to_json(arr)
        x, y = self.fresh(), self.fresh()
        elems = self._elements(a)
        ints = (f"coalesce(list_bool_and(list_transform({elems}, lambda {x}: "
                f"coalesce(jt({x}) = 'i', false))), true)")
        total = f"coalesce(list_sum(list_transform({elems}, lambda {y}: jint({y}))), 0::HUGEINT)"
        return self._fn(f"TRY_CAST({total} AS BIGINT)", "int", [a], f"({self.jt(a)} = 'a' AND {ints})",
                        f"TRY_CAST({total} AS BIGINT) IS NOT NULL")

    def f_from_json(self, children, cur):
        (v,) = self.args(children, cur)
        s, check = self.as_str(v, nullable=True)
        self.note("from_json() parses in Python (a UDF: DuckDB's reader accepts what json.loads rejects)")
        raw = self.hoist(V(f"{_UDF}from_json({s})", "str", None, **_meta(v)))  # NULL in, NULL out: no Python call
        return self._fn(f"CAST(nullif({raw.sql}, '{ERROR_MARK}') AS JSON)", "json", [v, raw], check,
                        f"({raw.sql} IS DISTINCT FROM '{ERROR_MARK}')")

    def f_zip(self, children, cur):
        a, b = (self.to_json(v) for v in self.args(children, cur))
        la, lb = self._elements(a), self._elements(b)
        s = self.fresh()
        pairs = (f"list_transform(list_slice(list_zip({la}, {lb}), 1, least(len({la}), len({lb}))), "
                 f"lambda {s}: [{s}[1], {s}[2]]::JSON[])")
        sql = f"(CASE WHEN jnull({a.sql}) OR jnull({b.sql}) THEN NULL ELSE to_json({pairs}) END)"
        return self._fn(sql, "json", [a, b], f"{self.jt(a)} IN ('a', 'n') AND {self.jt(b)} IN ('a', 'n')")

    def f_keys(self, children, cur):
        (v,) = self.args(children, cur)
        j = self.to_json(v)
        return self._fn(f"(CASE WHEN {self.jt(j)} = 'o' THEN to_json(json_keys({j.sql})) END)", "json", [j],
                        f"{self.jt(j)} = 'o'")

    def f_values(self, children, cur):
        (v,) = self.args(children, cur)
        j = self.to_json(v)
        sql = (f"(CASE WHEN {self.jt(j)} = 'o' THEN "
               f"to_json(map_values(from_json({j.sql}, '\"MAP(VARCHAR, JSON)\"'))) END)")
        return self._fn(sql, "json", [j], f"{self.jt(j)} = 'o'")


def _literal_strings(n: dict[str, Any]) -> list[str] | None:
    """The strings of a literal list: `` `["a", "b"]` `` or the multi-select `['a', 'b']`."""
    if n["type"] == "literal" and isinstance(n["value"], list):
        items = n["value"]
    elif n["type"] == "multi_select_list" and all(c["type"] == "literal" for c in n["children"]):
        items = [c["value"] for c in n["children"]]
    else:
        return None
    return items if all(isinstance(x, str) for x in items) else None


def _pure_path(n: dict[str, Any]) -> list[str | int] | None:
    """Field and index steps from the current value (`a.b[0].c`), or None when it is not one."""
    kind = n["type"]
    if kind == "field":
        return [n["value"]]
    if kind == "index":
        return [n["value"]]
    if kind in ("subexpression", "index_expression"):
        out: list[str | int] = []
        for child in n["children"]:
            if child["type"] == "identity" and kind == "index_expression":
                continue
            steps = _pure_path(child)
            if steps is None:
                return None
            out.extend(steps)
        return out
    return None


def install_macros(conn) -> None:
    for statement in MACROS:
        conn.execute(statement)
