"""Reads and writes of the `correlations` table, and of the enrichment written onto events.

A row links `event_id` (the event a rule enriches, e.g. an alarm) to `related_event_id` (the
context it found, e.g. the deployment before it), with the rule, a confidence, the time from the
event to the related event (`delta_seconds`, negative when the related event came first) and
`matched` (the keys and values that matched and the score's parts). Every statement names the
tenant; both ends of a row always belong to it.

The links of each event are also written into `integration_context.enrichment_metadata.correlations`
of both events, with the rule and the related event's source integration (attribution). That is
done in SQL, leaving `content_hash` alone: the next upsert of unchanged source content stays
"unchanged", and an update of changed content keeps `enrichment_metadata` (`merge_staged`).
`updated_at` is left alone too, so enriching is not itself a change the next enrichment run has
to revisit.

Working tables (temp, per connection, filled by `integrations.enrichment`): `_enr_links` (rule,
event_id, related_event_id, ...: the links the rules make now), `_enr_affected` (rule, event_id:
the events whose links were recomputed), `_enr_dirty` (events that arrived or changed since the
last run), `_enr_events` (the tenant's events being looked at).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

ENRICHMENT_PLUGIN = "_enrichment"
ENRICHMENT_SOURCE = "correlations"


@dataclass
class LinkChanges:
    """What reconciling one rule's links did, and the events whose enrichment must be rewritten."""

    inserted: int = 0
    updated: int = 0
    removed: int = 0
    touched: set[str] = field(default_factory=set)


def _pairs(rows: Sequence[tuple[Any, ...]]) -> set[str]:
    return {value for row in rows for value in row}


def reconcile_links(conn: duckdb.DuckDBPyConnection, tenant_id: str, rules: Sequence[str], *, scoped: bool,
                    run_id: str | None, now: datetime, stored: bool = True, found: bool = True) -> dict[str, LinkChanges]:
    """Make the stored rows of `rules` equal `_enr_links`, per rule (for the events in `_enr_affected` when scoped).

    Unchanged rows are not touched (their `created_at` and `run_id` stay): re-running changes nothing.
    `stored` / `found` say whether the rules have rows already / made links now (statements are skipped if not).
    """
    out: dict[str, LinkChanges] = {rule: LinkChanges() for rule in rules}
    if not stored and not found:
        return out
    params = {"tenant": tenant_id, "rules": list(rules), "run_id": run_id, "now": now}
    scope = ("AND EXISTS (SELECT 1 FROM _enr_affected a WHERE a.rule = c.rule AND a.event_id = c.event_id)"
             if scoped else "")
    removed = [] if not stored else conn.execute(f"""
        DELETE FROM correlations c
        WHERE c.tenant_id = $tenant AND list_contains($rules::VARCHAR[], c.rule) {scope}
          AND NOT EXISTS (SELECT 1 FROM _enr_links l WHERE l.rule = c.rule AND l.event_id = c.event_id
                          AND l.related_event_id = c.related_event_id)
        RETURNING c.rule, c.event_id, c.related_event_id""", {k: params[k] for k in ("tenant", "rules")}).fetchall()
    updated = [] if not (stored and found) else conn.execute("""
        UPDATE correlations c
        SET confidence = l.confidence, delta_seconds = l.delta_seconds, matched = l.matched, run_id = $run_id
        FROM _enr_links l
        WHERE c.tenant_id = $tenant AND l.rule = c.rule AND l.event_id = c.event_id
          AND l.related_event_id = c.related_event_id
          AND (c.confidence IS DISTINCT FROM l.confidence OR c.delta_seconds IS DISTINCT FROM l.delta_seconds
               OR c.matched::VARCHAR IS DISTINCT FROM l.matched::VARCHAR)
        RETURNING c.rule, c.event_id, c.related_event_id""",
                                                          {k: params[k] for k in ("tenant", "run_id")}).fetchall()
    inserted = [] if not found else conn.execute("""
        INSERT INTO correlations (tenant_id, event_id, related_event_id, rule, confidence, delta_seconds, matched,
                                  created_at, run_id)
        SELECT $tenant, l.event_id, l.related_event_id, l.rule, l.confidence, l.delta_seconds, l.matched, $now, $run_id
        FROM _enr_links l
        WHERE NOT EXISTS (
            SELECT 1 FROM correlations c WHERE c.tenant_id = $tenant AND c.rule = l.rule AND c.event_id = l.event_id
              AND c.related_event_id = l.related_event_id)
        RETURNING rule, event_id, related_event_id""",
                                                 {k: params[k] for k in ("tenant", "now", "run_id")}).fetchall()
    for rows, attr in ((removed, "removed"), (updated, "updated"), (inserted, "inserted")):
        for rule, event_id, related_event_id in rows:
            change = out.setdefault(rule, LinkChanges())
            setattr(change, attr, getattr(change, attr) + 1)
            change.touched.update((event_id, related_event_id))
    return out


def remove_other_rules(conn: duckdb.DuckDBPyConnection, tenant_id: str, keep: Iterable[str]) -> LinkChanges:
    """Drop the rows of rules that are no longer configured (or disabled)."""
    rows = conn.execute("""
        DELETE FROM correlations WHERE tenant_id = $tenant AND NOT list_contains($keep::VARCHAR[], rule)
        RETURNING event_id, related_event_id""", {"tenant": tenant_id, "keep": sorted(keep)}).fetchall()
    return LinkChanges(removed=len(rows), touched=_pairs(rows))


def remove_orphans(conn: duckdb.DuckDBPyConnection, tenant_id: str) -> LinkChanges:
    """Drop rows whose event or related event is gone (retention, deletion)."""
    rows = conn.execute("""
        DELETE FROM correlations c
        WHERE c.tenant_id = $tenant
          AND (NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = c.event_id AND e.tenant_id = $tenant)
               OR NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = c.related_event_id AND e.tenant_id = $tenant))
        RETURNING c.event_id, c.related_event_id""", {"tenant": tenant_id}).fetchall()
    return LinkChanges(removed=len(rows), touched=_pairs(rows))


def fill_dirty(conn: duckdb.DuckDBPyConnection, tenant_id: str, kinds: Sequence[str], since: datetime,
               until: datetime | None) -> tuple[int, datetime | None, datetime | None]:
    """`_enr_dirty`: the tenant's events stored or changed in (since, until].

    Returns their number and the time range to revisit: their own times and those of the events
    they were linked to (an event that moved in time must leave its old neighbours too).
    """
    params: dict[str, Any] = {"tenant": tenant_id, "kinds": sorted(kinds), "since": since}
    upper = ""
    if until is not None:
        upper = "AND e.updated_at <= $until"
        params["until"] = until
    conn.execute(f"""
        CREATE OR REPLACE TEMP TABLE _enr_dirty AS
        SELECT e.event_id, epoch_us(e.occurred_at) AS t_us, e.occurred_at
        FROM events e
        WHERE e.tenant_id = $tenant AND list_contains($kinds::VARCHAR[], e.kind) AND e.updated_at > $since {upper}""",
                 params)
    count, lo, hi = conn.execute("""
        WITH times AS (
            SELECT occurred_at FROM _enr_dirty
            UNION ALL
            SELECT o.occurred_at FROM correlations c
            JOIN events o ON o.tenant_id = $tenant AND o.event_id = c.related_event_id
            WHERE c.tenant_id = $tenant AND c.event_id IN (SELECT event_id FROM _enr_dirty)
            UNION ALL
            SELECT o.occurred_at FROM correlations c
            JOIN events o ON o.tenant_id = $tenant AND o.event_id = c.event_id
            WHERE c.tenant_id = $tenant AND c.related_event_id IN (SELECT event_id FROM _enr_dirty))
        SELECT (SELECT count(*) FROM _enr_dirty), min(occurred_at), max(occurred_at) FROM times""",
                                 {"tenant": tenant_id}).fetchall()[0]
    return count, lo, hi


def fill_affected(conn: duckdb.DuckDBPyConnection, tenant_id: str,
                  rules: Sequence[tuple[str, Sequence[str], int]]) -> dict[str, int]:
    """`_enr_affected` (rule, event_id): per rule (name, event kinds, reach in microseconds), the events on its
    event side whose links a dirty event may change: those within the rule's reach of a dirty event, and
    those already linked to a dirty event. Returns how many per rule."""
    if not rules:
        return {}
    params: dict[str, Any] = {"tenant": tenant_id}
    parts = []
    for i, (rule, kinds, span_us) in enumerate(rules):
        params.update({f"rule{i}": rule, f"kinds{i}": list(kinds), f"span{i}": span_us})
        parts.append(f"""
            SELECT $rule{i} AS rule, a.event_id FROM _enr_events a
            WHERE a.tenant_id = $tenant AND list_contains($kinds{i}::VARCHAR[], a.kind)
              AND (EXISTS (SELECT 1 FROM _enr_dirty d WHERE d.t_us BETWEEN a.t_us - $span{i} AND a.t_us + $span{i})
                   OR a.event_id IN (SELECT c.event_id FROM correlations c
                                     WHERE c.tenant_id = $tenant AND c.rule = $rule{i}
                                       AND c.related_event_id IN (SELECT event_id FROM _enr_dirty)))""")
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _enr_affected AS {' UNION ALL '.join(parts)}", params)
    return dict(conn.execute("SELECT rule, count(*) FROM _enr_affected GROUP BY rule").fetchall())


def dirty_and_partners(conn: duckdb.DuckDBPyConnection, tenant_id: str) -> set[str]:
    """The dirty events and every event linked to one: their enrichment shows titles and kinds of each other."""
    rows = conn.execute("""
        SELECT event_id FROM _enr_dirty
        UNION SELECT c.related_event_id FROM correlations c
              WHERE c.tenant_id = $tenant AND c.event_id IN (SELECT event_id FROM _enr_dirty)
        UNION SELECT c.event_id FROM correlations c
              WHERE c.tenant_id = $tenant AND c.related_event_id IN (SELECT event_id FROM _enr_dirty)""",
                        {"tenant": tenant_id}).fetchall()
    return {r[0] for r in rows}


def write_enrichment_metadata(conn: duckdb.DuckDBPyConnection, tenant_id: str,
                              event_ids: Iterable[str] | None = None) -> int:
    """Rewrite `enrichment_metadata.correlations` of these events (all of the tenant's with None) from the table.

    Each entry names the rule, the related event, its kind, title and source integration, the
    confidence, the time to it and what matched. Events whose entries did not change are not
    written; an event left without links loses the key. Returns the number of events written.
    """
    params: dict[str, Any] = {"tenant": tenant_id}
    if event_ids is None:
        touched = """
            SELECT event_id FROM events
            WHERE tenant_id = $tenant
              AND (json_exists(integration_context, '$.enrichment_metadata.correlations')
                   OR event_id IN (SELECT event_id FROM correlations WHERE tenant_id = $tenant)
                   OR event_id IN (SELECT related_event_id FROM correlations WHERE tenant_id = $tenant))"""
    else:
        touched = "SELECT DISTINCT unnest($ids::VARCHAR[]) AS event_id"
        params["ids"] = sorted(set(event_ids))
    written = conn.execute(f"""
        WITH touched AS ({touched}),
        links AS (
            SELECT c.event_id AS me, c.related_event_id AS other, c.rule, c.confidence, c.delta_seconds AS delta,
                   c.matched, 'event' AS role
            FROM correlations c WHERE c.tenant_id = $tenant AND c.event_id IN (SELECT event_id FROM touched)
            UNION ALL
            SELECT c.related_event_id, c.event_id, c.rule, c.confidence, -c.delta_seconds, c.matched, 'related'
            FROM correlations c WHERE c.tenant_id = $tenant AND c.related_event_id IN (SELECT event_id FROM touched)),
        entries AS (
            SELECT l.me, to_json(list(json_object(
                       'rule', l.rule, 'role', l.role, 'related_event_id', l.other, 'related_kind', o.kind,
                       'related_title', o.title, 'related_occurred_at', strftime(o.occurred_at, '%Y-%m-%dT%H:%M:%S.%gZ'),
                       'source_integration', o.source_integration, 'confidence', l.confidence,
                       'delta_seconds', l.delta, 'matched', l.matched)
                   ORDER BY l.rule, abs(l.delta), l.other)) AS correlations
            FROM links l JOIN events o ON o.event_id = l.other AND o.tenant_id = $tenant
            GROUP BY l.me),
        meta AS (SELECT t.event_id, en.correlations FROM touched t LEFT JOIN entries en ON en.me = t.event_id)
        UPDATE events
        SET integration_context = json_merge_patch(events.integration_context,
                json_object('enrichment_metadata', json_object('correlations', meta.correlations)))
        FROM meta
        WHERE events.tenant_id = $tenant AND events.event_id = meta.event_id
          AND json_extract(events.integration_context, '$.enrichment_metadata.correlations')::VARCHAR
              IS DISTINCT FROM meta.correlations::VARCHAR
        RETURNING events.event_id""", params).fetchall()
    return len(written)


def read_enrichment_state(conn: duckdb.DuckDBPyConnection, tenant_id: str) -> tuple[dict[str, str], datetime | None]:
    """Where the tenant's enrichment got to (`updated_at`: last change seen, `config`: rules fingerprint),
    and the latest `updated_at` of its events now."""
    row = conn.execute("""
        SELECT (SELECT max(updated_at) FROM events WHERE tenant_id = $tenant),
               (SELECT value FROM watermarks WHERE tenant_id = $tenant AND plugin = $plugin AND source = $source
                  AND cursor_key = 'updated_at'),
               (SELECT value FROM watermarks WHERE tenant_id = $tenant AND plugin = $plugin AND source = $source
                  AND cursor_key = 'config')""",
                       {"tenant": tenant_id, "plugin": ENRICHMENT_PLUGIN, "source": ENRICHMENT_SOURCE}).fetchall()[0]
    state = {key: value for key, value in (("updated_at", row[1]), ("config", row[2])) if value is not None}
    return state, row[0]


def write_enrichment_state(conn: duckdb.DuckDBPyConnection, tenant_id: str, updated_at: datetime, config: str,
                           now: datetime) -> None:
    """Remember the last change enrichment has seen, and the fingerprint of the rules it used (watermarks table)."""
    conn.execute("""
        INSERT OR REPLACE INTO watermarks VALUES
            ($tenant, $plugin, $source, 'updated_at', $updated_at, $now),
            ($tenant, $plugin, $source, 'config', $config, $now)""",
                 {"tenant": tenant_id, "plugin": ENRICHMENT_PLUGIN, "source": ENRICHMENT_SOURCE,
                  "updated_at": updated_at.isoformat(), "config": config, "now": now})


def list_correlations(conn: duckdb.DuckDBPyConnection, tenant_id: str, *, rule: str | None = None,
                      event_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The tenant's links with both events' kind, title, time and source integration, oldest event first."""
    sql = """
        SELECT c.tenant_id, c.rule, c.event_id, c.related_event_id, c.confidence, c.delta_seconds, c.matched,
               c.created_at, c.run_id,
               e.kind AS event_kind, e.title AS event_title, e.occurred_at AS event_occurred_at,
               e.source_integration AS event_source_integration,
               r.kind AS related_kind, r.title AS related_title, r.occurred_at AS related_occurred_at,
               r.source_integration AS related_source_integration
        FROM correlations c
        JOIN events e ON e.event_id = c.event_id AND e.tenant_id = c.tenant_id
        JOIN events r ON r.event_id = c.related_event_id AND r.tenant_id = c.tenant_id
        WHERE c.tenant_id = $tenant"""
    params: dict[str, Any] = {"tenant": tenant_id}
    if rule is not None:
        sql += " AND c.rule = $rule"
        params["rule"] = rule
    if event_id is not None:
        sql += " AND (c.event_id = $event OR c.related_event_id = $event)"
        params["event"] = event_id
    sql += " ORDER BY e.occurred_at, c.event_id, c.rule, abs(c.delta_seconds), c.related_event_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row)) for row in cur.fetchall()]
    for row in rows:
        if isinstance(row["matched"], str):
            row["matched"] = json.loads(row["matched"])
    return rows


def correlation_rows(conn: duckdb.DuckDBPyConnection, tenant_id: str, rule: str,
                     event_ids: Sequence[str]) -> list[tuple[str, str, float]]:
    """(event_id, related_event_id, delta_seconds) of a rule's rows whose event is one of `event_ids`."""
    if not event_ids:
        return []
    return conn.execute("""
        SELECT event_id, related_event_id, delta_seconds FROM correlations
        WHERE tenant_id = $tenant AND rule = $rule AND list_contains($ids::VARCHAR[], event_id)""",
                        {"tenant": tenant_id, "rule": rule, "ids": list(event_ids)}).fetchall()


def count_correlations(conn: duckdb.DuckDBPyConnection, tenant_id: str) -> dict[str, int]:
    rows = conn.execute("SELECT rule, count(*) FROM correlations WHERE tenant_id = ? GROUP BY rule ORDER BY rule",
                        [tenant_id]).fetchall()
    return dict(rows)
