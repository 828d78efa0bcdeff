"""Rules compiled to DuckDB SQL over one tenant's working set.

`prepare_working_set` copies the tenant's events (filtered by tenant, and by time when only a
part needs revisiting) into the temp table `_enr_events`, and their correlation-hint values into
`_enr_keys` with service aliases applied (`service:<alias>` -> `service:<canonical>`). Every
query below reads only those two tables and still joins on `tenant_id` on both sides: a link
can never leave the tenant (Property 8).

Two shapes per rule:
- `links_sql`: the links to keep (key equality + bounded time window + filters, ranked nearest
  first), used by `enrich`. `match: nearest` keeps rank 1: the most recent related event before
  the event, what an ASOF join gives, but ranked so ties are broken the same way every run.
- `considered_sql`: for `explain`, every event a rule looked at around one event, with each
  check as a column, so the explanation can say which check rejected a candidate.

Values from rule files only reach SQL as named parameters (`$p0`, `$p1`, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb

from integrations.enrichment._rules import (
    Condition,
    HintKey,
    MetadataRule,
    Rule,
    SharedHintRule,
    ShippedChangesRule,
    Side,
    TemporalRule,
)
from integrations.events import SEVERITIES

US = 1_000_000
_RANK = "CASE {a}.severity " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(SEVERITIES)) + " END"


class Params:
    """Named parameters: `p(value)` returns `$pN` and remembers the value."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def _text(value: Any) -> str:
    """A rule value as the text `json_extract_string` yields for it (`true`, `3`, `failure`)."""
    return value if isinstance(value, str) else json.dumps(value)


def json_path(field: str) -> str:
    segments = field.split(".")[1:]
    return "$" + "".join(f'."{s}"' for s in segments)


def value_sql(field: str, a: str, p: Params) -> str:
    """The SQL value of a rule field on the event aliased `a`."""
    if field.startswith("attributes."):
        return f"json_extract_string({a}.attributes, {p(json_path(field))})"
    return f"{a}.{field}"


def service_sql(raw: str) -> str:
    """A service name with the tenant's aliases applied (lower case)."""
    return f"coalesce((SELECT al.canonical FROM _enr_aliases al WHERE al.alias = lower({raw})), lower({raw}))"


def field_key_sql(field: str, a: str, p: Params) -> str:
    """A field compared between two events; `attributes.service` goes through the aliases."""
    raw = value_sql(field, a, p)
    return service_sql(raw) if field == "attributes.service" else raw


def condition_sql(cond: Condition, a: str, p: Params) -> tuple[str, str]:
    """(boolean SQL that is never NULL, SQL of the value tested)."""
    v = value_sql(cond.field, a, p)
    op = cond.operator
    if op == "equals":
        expr = f"{v} = {p(_text(cond.equals))}"
    elif op == "in":
        expr = f"list_contains({p([_text(x) for x in cond.in_ or []])}::VARCHAR[], {v})"
    elif op == "not_in":
        expr = f"({v} IS NULL OR NOT list_contains({p([_text(x) for x in cond.not_in or []])}::VARCHAR[], {v}))"
    elif op == "at_least":
        if cond.field == "severity":
            expr = f"{a}.severity_rank >= {p(SEVERITIES.index(str(cond.at_least)))}"
        else:
            expr = f"TRY_CAST({v} AS DOUBLE) >= {p(float(cond.at_least))}"  # type: ignore[arg-type]
    elif op == "matches":
        expr = f"regexp_matches({v}, {p(cond.matches)})"
    else:
        expr = f"{v} IS {'NOT ' if cond.exists else ''}NULL"
    expr = f"coalesce({expr}, false)"
    if cond.kinds:
        expr = f"(NOT list_contains({p(list(cond.kinds))}::VARCHAR[], {a}.kind) OR {expr})"
    return expr, v


def side_sql(side: Side, a: str, p: Params) -> str:
    parts = [f"list_contains({p(list(side.kinds))}::VARCHAR[], {a}.kind)"]
    parts += [condition_sql(c, a, p)[0] for c in side.where]
    return " AND ".join(parts)


def key_filter_sql(key: HintKey, k: str, p: Params) -> str:
    parts = []
    if key.prefix:
        parts.append(f"starts_with({k}.key, {p(key.prefix)})")
    if key.pattern:
        parts.append(f"regexp_matches({k}.key, {p(key.pattern)})")
    return " AND ".join(parts)


def window_bounds(rule: Rule) -> tuple[int, int]:
    """Allowed related-minus-event time, in microseconds."""
    w = int(round(rule.window * US))
    return {"before": (-w, 0), "after": (0, w), "around": (-w, w)}[rule.direction]


# -- the working set -----------------------------------------------------------------------------

def prepare_working_set(conn: duckdb.DuckDBPyConnection, tenant_id: str, kinds: Sequence[str],
                        aliases: Mapping[str, str], *, time_range: tuple[datetime, datetime] | None = None,
                        include: Sequence[str] = ()) -> int:
    """Fill `_enr_aliases`, `_enr_events` and `_enr_keys` for one tenant; returns the number of events."""
    conn.execute("CREATE OR REPLACE TEMP TABLE _enr_aliases (alias VARCHAR, canonical VARCHAR)")
    if aliases:
        conn.executemany("INSERT INTO _enr_aliases VALUES (?, ?)",
                         [[alias.lower(), canonical.lower()] for alias, canonical in aliases.items()])
    p = Params()
    where = f"e.tenant_id = {p(tenant_id)} AND list_contains({p(sorted(kinds))}::VARCHAR[], e.kind)"
    if time_range is not None:
        where += f" AND e.occurred_at BETWEEN {p(time_range[0])} AND {p(time_range[1])}"
    if include:
        where = f"({where}) OR (e.tenant_id = {p(tenant_id)} AND list_contains({p(list(include))}::VARCHAR[], e.event_id))"
    count = conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _enr_events AS
        SELECT e.event_id, e.tenant_id, e.kind, e.event_type, e.severity, {_RANK.format(a='e')} AS severity_rank,
               e.title, e.occurred_at, epoch_us(e.occurred_at) AS t_us, e.updated_at, e.source_integration,
               e.source, e.attributes, e.hint_values
        FROM events e WHERE {where}""", p.values).fetchall()[0][0]
    conn.execute("""
        CREATE OR REPLACE TEMP TABLE _enr_keys AS
        SELECT h.event_id, h.tenant_id, h.raw,
               CASE WHEN starts_with(h.raw, 'service:')
                    THEN 'service:' || coalesce(al.canonical, lower(substr(h.raw, 9))) ELSE h.raw END AS key
        FROM (SELECT event_id, tenant_id, unnest(hint_values) AS raw FROM _enr_events) h
        LEFT JOIN _enr_aliases al ON al.alias = lower(substr(h.raw, 9)) AND starts_with(h.raw, 'service:')""")
    return count


def drop_working_set(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("; ".join(f"DROP TABLE IF EXISTS {table}" for table in (
        "_enr_links", "_enr_affected", "_enr_dirty", "_enr_keys", "_enr_events", "_enr_aliases")))


# -- links ----------------------------------------------------------------------------------------

def _orientation_sql(rule: Rule, p: Params, lo: int, hi: int) -> str:
    """When both events could stand on either side, keep a pair once: with the later event as `event`."""
    if not (set(rule.event.kinds) & set(rule.related.kinds)):
        return "true"
    return (f"NOT ({side_sql(rule.event, 'r', p)} AND {side_sql(rule.related, 'e', p)} "
            f"AND e.t_us - r.t_us BETWEEN {lo} AND {hi} "
            f"AND (r.t_us > e.t_us OR (r.t_us = e.t_us AND r.event_id > e.event_id)))")


def _scored_sql(rule: Rule, p: Params, pairs: str) -> str:
    """Score, rank and describe the pairs of a key or metadata rule."""
    limit = 1 if rule.match == "nearest" else rule.max_links
    w = int(round(rule.window * US))
    return f"""
        SELECT {p(rule.name)} AS rule, event_id, related_event_id, delta_us / 1e6 AS delta_seconds,
               round({p(rule.confidence)} * time_factor, 6) AS confidence,
               json_object('keys', keys, 'window', {p(rule.window_text())}, 'direction', {p(rule.direction)},
                           'match', {p(rule.match)}, 'rank', rank,
                           'score', json_object('base', {p(rule.confidence)}, 'time_factor', round(time_factor, 6),
                                                'confidence', round({p(rule.confidence)} * time_factor, 6))) AS matched
        FROM (SELECT *, 1.0 - {p(rule.time_decay)} * abs(delta_us) / {w} AS time_factor,
                     row_number() OVER (PARTITION BY event_id ORDER BY abs(delta_us), related_event_id) AS rank
              FROM ({pairs}) pairs) ranked
        WHERE rank <= {limit}"""


def links_sql(rule: Rule, p: Params, *, affected_only: bool) -> str:
    """SELECT of the links a rule makes (rule, event_id, related_event_id, delta_seconds, confidence, matched)."""
    if isinstance(rule, ShippedChangesRule):
        return _shipped_sql(rule, p, affected_only=affected_only)
    lo, hi = window_bounds(rule)
    scope = f" AND e.event_id IN (SELECT event_id FROM _enr_affected WHERE rule = {p(rule.name)})" if affected_only else ""
    orient = _orientation_sql(rule, p, lo, hi)
    if isinstance(rule, MetadataRule):
        cols_e = ", ".join(f"{field_key_sql(f, 'e', p)} AS f{i}, {value_sql(f, 'e', p)} AS v{i}"
                           for i, f in enumerate(rule.fields))
        cols_r = ", ".join(f"{field_key_sql(f, 'r', p)} AS f{i}, {value_sql(f, 'r', p)} AS v{i}"
                           for i, f in enumerate(rule.fields))
        on = " AND ".join(f"r.f{i} = e.f{i}" for i in range(len(rule.fields)))
        keys = ", ".join(f"{{'key': {p(f)}, 'event_value': e.v{i}, 'related_value': r.v{i}}}"
                         for i, f in enumerate(rule.fields))
        pairs = f"""
            WITH ev AS (SELECT e.*, {cols_e} FROM _enr_events e WHERE {side_sql(rule.event, 'e', p)}{scope}),
                 rv AS (SELECT r.*, {cols_r} FROM _enr_events r WHERE {side_sql(rule.related, 'r', p)})
            SELECT e.event_id, r.event_id AS related_event_id, r.t_us - e.t_us AS delta_us, [{keys}] AS keys
            FROM ev e JOIN rv r ON r.tenant_id = e.tenant_id AND {on}
            WHERE r.event_id <> e.event_id AND r.t_us - e.t_us BETWEEN {lo} AND {hi} AND {orient}"""
        return _scored_sql(rule, p, pairs)
    assert isinstance(rule, (SharedHintRule, TemporalRule))
    pairs = f"""
        WITH ev AS (SELECT e.* FROM _enr_events e WHERE {side_sql(rule.event, 'e', p)}{scope}),
             rv AS (SELECT r.* FROM _enr_events r WHERE {side_sql(rule.related, 'r', p)}),
             ek AS (SELECT k.* FROM _enr_keys k SEMI JOIN ev ON ev.event_id = k.event_id WHERE {key_filter_sql(rule.key, 'k', p)}),
             rk AS (SELECT k.* FROM _enr_keys k SEMI JOIN rv ON rv.event_id = k.event_id WHERE {key_filter_sql(rule.key, 'k', p)})
        SELECT e.event_id, r.event_id AS related_event_id, r.t_us - e.t_us AS delta_us,
               list({{'key': ek.key, 'event_value': ek.raw, 'related_value': rk.raw}} ORDER BY ek.key, ek.raw, rk.raw) AS keys
        FROM ev e JOIN ek ON ek.event_id = e.event_id AND ek.tenant_id = e.tenant_id
                  JOIN rk ON rk.key = ek.key AND rk.tenant_id = e.tenant_id
                  JOIN rv r ON r.event_id = rk.event_id AND r.tenant_id = e.tenant_id
        WHERE r.event_id <> e.event_id AND r.t_us - e.t_us BETWEEN {lo} AND {hi} AND {orient}
        GROUP BY e.event_id, r.event_id, r.t_us, e.t_us"""
    return _scored_sql(rule, p, pairs)


def deploys_sql(rule: ShippedChangesRule, p: Params) -> str:
    """Every deployment of the working set with its service and the previous deployment of that service."""
    parts = ", ".join(f"{value_sql(f, 'e', p)}" for f in rule.partition_by)
    partition = "dk.key" + (f", {parts}" if parts else "")
    return f"""
        SELECT e.*, dk.key AS service, {value_sql(rule.event_sha, 'e', p)} AS sha, {value_sql(rule.event_ref, 'e', p)} AS ref,
               lag(e.t_us) OVER w AS prev_t_us, lag(e.event_id) OVER w AS prev_event_id,
               lag(e.occurred_at) OVER w AS prev_occurred_at
        FROM _enr_events e JOIN _enr_keys dk ON dk.event_id = e.event_id AND dk.tenant_id = e.tenant_id
        WHERE {side_sql(rule.event, 'e', p)} AND {key_filter_sql(rule.service_key, 'dk', p)}
        WINDOW w AS (PARTITION BY {partition} ORDER BY e.t_us, e.event_id)"""


def changes_sql(rule: ShippedChangesRule, p: Params, predicate: bool = True) -> str:
    shas = ", ".join(value_sql(f, "r", p) for f in rule.related_sha)
    branch = "coalesce(" + ", ".join(value_sql(f, "r", p) for f in rule.related_branch) + ", NULL)"
    where = side_sql(rule.related, "r", p) if predicate else f"list_contains({p(list(rule.related.kinds))}::VARCHAR[], r.kind)"
    return f"SELECT r.*, [{shas}] AS shas, {branch} AS branch FROM _enr_events r WHERE {where}"


def _shipped_sql(rule: ShippedChangesRule, p: Params, *, affected_only: bool) -> str:
    w = int(round(rule.window * US))
    scope = f" WHERE d.event_id IN (SELECT event_id FROM _enr_affected WHERE rule = {p(rule.name)})" if affected_only else ""
    vias = [f.split(".")[-1] for f in rule.related_sha]
    context = f"""d.service, d.sha, d.ref, d.prev_event_id, d.prev_occurred_at,
                  {shipped_lower_sql('d', w)} AS lower_us, {shipped_first_sql('d', w)} AS first_deployment"""
    limit = rule.max_links
    return f"""
        WITH deploys AS ({deploys_sql(rule, p)}),
             anchors AS (SELECT * FROM deploys d{scope}),
             changes AS ({changes_sql(rule, p)}),
             ck AS (SELECT k.* FROM _enr_keys k SEMI JOIN changes c ON c.event_id = k.event_id
                    WHERE {key_filter_sql(rule.service_key, 'k', p)}),
             cs AS (SELECT * FROM (SELECT c.event_id, c.tenant_id, unnest(c.shas) AS sha,
                                          generate_subscripts(c.shas, 1) AS pos FROM changes c)
                    WHERE sha IS NOT NULL),
             direct AS (
                SELECT d.event_id, c.event_id AS related_event_id, c.t_us - d.t_us AS delta_us,
                       {p(rule.confidence)}::DOUBLE AS base, cs.pos, ({p(vias)}::VARCHAR[])[cs.pos] AS via,
                       [{{'key': ({p(vias)}::VARCHAR[])[cs.pos], 'event_value': d.sha, 'related_value': cs.sha}}] AS keys,
                       {context}
                FROM anchors d JOIN cs ON cs.sha = d.sha AND cs.tenant_id = d.tenant_id
                     JOIN changes c ON c.event_id = cs.event_id AND c.tenant_id = d.tenant_id
                WHERE c.event_id <> d.event_id AND abs(c.t_us - d.t_us) <= {w}),
             between_deployments AS (
                SELECT d.event_id, c.event_id AS related_event_id, c.t_us - d.t_us AS delta_us,
                       {p(rule.range_confidence)}::DOUBLE AS base, 1000 AS pos, 'between_deployments' AS via,
                       [{{'key': 'service', 'event_value': d.service, 'related_value': ck.key}},
                        {{'key': 'branch', 'event_value': d.ref, 'related_value': c.branch}}] AS keys, {context}
                FROM anchors d JOIN ck ON ck.key = d.service AND ck.tenant_id = d.tenant_id
                     JOIN changes c ON c.event_id = ck.event_id AND c.tenant_id = d.tenant_id
                WHERE c.event_id <> d.event_id AND c.branch = d.ref
                  AND c.t_us > {shipped_lower_sql('d', w)} AND c.t_us <= d.t_us),
             found AS (SELECT * FROM direct UNION ALL BY NAME SELECT * FROM between_deployments),
             best AS (SELECT * FROM found
                      QUALIFY row_number() OVER (PARTITION BY event_id, related_event_id ORDER BY base DESC, pos) = 1),
             ranked AS (SELECT *, 1.0 - {p(rule.time_decay)} * abs(delta_us) / {w} AS time_factor,
                               row_number() OVER (PARTITION BY event_id
                                                  ORDER BY base DESC, abs(delta_us), related_event_id) AS rank
                        FROM best)
        SELECT {p(rule.name)} AS rule, event_id, related_event_id, delta_us / 1e6 AS delta_seconds,
               round(base * time_factor, 6) AS confidence,
               json_object('via', via, 'keys', keys, 'service', service, 'sha', sha, 'branch', ref,
                           'lookback', {p(rule.window_text())}, 'first_deployment', first_deployment,
                           'previous_deployment', CASE WHEN first_deployment THEN NULL ELSE
                               json_object('event_id', prev_event_id,
                                           'occurred_at', strftime(prev_occurred_at, '%Y-%m-%dT%H:%M:%SZ')) END,
                           'since', strftime(to_timestamp(lower_us / 1e6), '%Y-%m-%dT%H:%M:%SZ'),
                           'rank', rank,
                           'score', json_object('base', base, 'time_factor', round(time_factor, 6),
                                                'confidence', round(base * time_factor, 6))) AS matched
        FROM ranked WHERE rank <= {limit}"""


def shipped_lower_sql(d: str, w: int) -> str:
    """Changes after this time (exclusive) were shipped by deployment `d`: its previous one, or the lookback."""
    return f"CASE WHEN {d}.prev_t_us IS NOT NULL AND {d}.prev_t_us >= {d}.t_us - {w} THEN {d}.prev_t_us ELSE {d}.t_us - {w} END"


def shipped_first_sql(d: str, w: int) -> str:
    return f"({d}.prev_t_us IS NULL OR {d}.prev_t_us < {d}.t_us - {w})"


# -- what explain looks at -----------------------------------------------------------------------

def considered_sql(rule: Rule, p: Params, event_id: str, role: str, horizon: float, limit: int) -> str:
    """Every candidate a rule looks at for `event_id` standing on side `role` ('event' or 'related').

    Columns: other_id, delta_us (related minus event), ok_e<i>/val_e<i> per event-side condition,
    ok_r<i>/val_r<i> per related-side condition, and the key columns of the rule type.
    """
    if isinstance(rule, ShippedChangesRule):
        return _shipped_considered_sql(rule, p, event_id, role, horizon, limit)
    h = int(round(horizon * US))
    x = p(event_id)
    if role == "event":
        sides = f"""e AS (SELECT * FROM _enr_events WHERE event_id = {x}),
                    r AS (SELECT * FROM _enr_events WHERE list_contains({p(list(rule.related.kinds))}::VARCHAR[], kind)
                          AND event_id <> {x})"""
        other = "r"
    else:
        sides = f"""r AS (SELECT * FROM _enr_events WHERE event_id = {x}),
                    e AS (SELECT * FROM _enr_events WHERE list_contains({p(list(rule.event.kinds))}::VARCHAR[], kind)
                          AND event_id <> {x})"""
        other = "e"
    cols = [f"{other}.event_id AS other_id", "r.t_us - e.t_us AS delta_us"]
    for i, cond in enumerate(rule.event.where):
        ok, val = condition_sql(cond, "e", p)
        cols += [f"{ok} AS ok_e{i}", f"{val} AS val_e{i}"]
    for i, cond in enumerate(rule.related.where):
        ok, val = condition_sql(cond, "r", p)
        cols += [f"{ok} AS ok_r{i}", f"{val} AS val_r{i}"]
    if isinstance(rule, MetadataRule):
        for i, f in enumerate(rule.fields):
            cols += [f"{field_key_sql(f, 'e', p)} AS ekey{i}", f"{field_key_sql(f, 'r', p)} AS rkey{i}",
                     f"{value_sql(f, 'e', p)} AS eraw{i}", f"{value_sql(f, 'r', p)} AS rraw{i}"]
    else:
        assert isinstance(rule, (SharedHintRule, TemporalRule))
        for a in ("e", "r"):
            cols.append(f"(SELECT list(DISTINCT k.key) FROM _enr_keys k WHERE k.event_id = {a}.event_id "
                        f"AND k.tenant_id = {a}.tenant_id AND {key_filter_sql(rule.key, 'k', p)}) AS {a}keys")
    lo, hi = window_bounds(rule)
    cols.append(f"{_orientation_sql(rule, p, lo, hi)} AS oriented")
    return f"""
        WITH {sides}
        SELECT {', '.join(cols)}
        FROM e JOIN r ON r.tenant_id = e.tenant_id
        WHERE abs(r.t_us - e.t_us) <= {h}
        ORDER BY abs(r.t_us - e.t_us), other_id
        LIMIT {int(limit)}"""


def _shipped_considered_sql(rule: ShippedChangesRule, p: Params, event_id: str, role: str, horizon: float,
                            limit: int) -> str:
    w = int(round(rule.window * US))
    h = int(round(horizon * US))
    x = p(event_id)
    if role == "event":
        d_where, c_where, other = f"event_id = {x}", f"event_id <> {x}", "c"
    else:
        d_where, c_where, other = f"event_id <> {x}", f"event_id = {x}", "d"
    vias = [f.split(".")[-1] for f in rule.related_sha]
    cols = [f"{other}.event_id AS other_id", "c.t_us - d.t_us AS delta_us", "c.t_us AS change_t_us", "d.service",
            "d.sha", "d.ref",
            "d.prev_event_id", "d.prev_occurred_at", f"{shipped_lower_sql('d', w)} AS lower_us",
            f"{shipped_first_sql('d', w)} AS first_deployment", "c.branch",
            f"({p(vias)}::VARCHAR[])[list_position(c.shas, d.sha)] AS via",
            f"(SELECT list(DISTINCT k.key) FROM _enr_keys k WHERE k.event_id = c.event_id AND k.tenant_id = c.tenant_id "
            f"AND {key_filter_sql(rule.service_key, 'k', p)}) AS ckeys"]
    for i, cond in enumerate(rule.related.where):
        ok, val = condition_sql(cond, "c", p)
        cols += [f"{ok} AS ok_r{i}", f"{val} AS val_r{i}"]
    return f"""
        WITH d AS (SELECT * FROM ({deploys_sql(rule, p)}) WHERE {d_where}),
             c AS (SELECT * FROM ({changes_sql(rule, p, predicate=False)}) WHERE {c_where})
        SELECT {', '.join(cols)}
        FROM d JOIN c ON c.tenant_id = d.tenant_id
        WHERE c.t_us - d.t_us BETWEEN {-max(h, w)} AND {h}
        QUALIFY row_number() OVER (PARTITION BY {other}.event_id ORDER BY coalesce(list_contains(ckeys, d.service), false) DESC, d.service) = 1
        ORDER BY abs(c.t_us - d.t_us), other_id
        LIMIT {int(limit)}"""


def own_side_sql(side: Side, p: Params, event_id: str) -> str:
    """The conditions of one side tested on one event: ok<i>, val<i>."""
    cols = ["e.event_id"]
    for i, cond in enumerate(side.where):
        ok, val = condition_sql(cond, "e", p)
        cols += [f"{ok} AS ok{i}", f"{val} AS val{i}"]
    return f"SELECT {', '.join(cols)} FROM _enr_events e WHERE e.event_id = {p(event_id)}"


def own_keys_sql(key: HintKey, p: Params, event_id: str) -> str:
    return (f"SELECT k.key FROM _enr_keys k WHERE k.event_id = {p(event_id)} AND {key_filter_sql(key, 'k', p)} "
            "ORDER BY k.key")


def own_fields_sql(fields: Sequence[str], p: Params, event_id: str) -> str:
    cols = ", ".join(f"{field_key_sql(f, 'e', p)} AS f{i}" for i, f in enumerate(fields))
    return f"SELECT {cols} FROM _enr_events e WHERE e.event_id = {p(event_id)}"


def own_deployment_sql(rule: ShippedChangesRule, p: Params, event_id: str) -> str:
    return f"SELECT service, sha, ref FROM ({deploys_sql(rule, p)}) WHERE event_id = {p(event_id)} ORDER BY service"
