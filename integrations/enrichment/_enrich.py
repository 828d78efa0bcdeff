"""`enrich()`: run the rules over one tenant's events and keep `correlations` and the events' enrichment in step.

The first run (and any run after the rules or aliases changed) looks at every event of the
tenant. Later runs only revisit what arrived or changed since the last run, and everything
within the rules' windows around it, in both directions: an alarm stored yesterday is linked
today when the deployment before it arrives late. Either way the result is the same, and
running again with nothing new changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb

from integrations.enrichment._rules import DEFAULT_RULES, Rule, config_hash
from integrations.enrichment._sql import US, Params, drop_working_set, links_sql, prepare_working_set
from integrations.errors import ConfigError
from integrations.store import EventStore, utcnow
from integrations.store._correlations import (
    LinkChanges,
    dirty_and_partners,
    fill_affected,
    fill_dirty,
    read_enrichment_state,
    count_correlations,
    reconcile_links,
    remove_orphans,
    remove_other_rules,
    write_enrichment_metadata,
    write_enrichment_state,
)


@dataclass
class RuleReport:
    """What one rule did in one run."""

    rule: str
    type: str
    revisited: int = 0    # events on the rule's event side whose links were recomputed
    links: int = 0        # links the rule makes among them now
    inserted: int = 0
    updated: int = 0
    removed: int = 0


@dataclass
class EnrichmentReport:
    """What `enrich` did for one tenant."""

    tenant_id: str
    run_id: str | None
    full: bool
    since: datetime | None
    watermark: datetime | None
    events: int = 0             # events in the working set
    arrived: int = 0            # events stored or changed since the last run (incremental runs)
    rules: list[RuleReport] = field(default_factory=list)
    orphans_removed: int = 0
    events_written: int = 0     # events whose enrichment_metadata changed
    duration_s: float = 0.0

    @property
    def inserted(self) -> int:
        return sum(r.inserted for r in self.rules)

    @property
    def updated(self) -> int:
        return sum(r.updated for r in self.rules)

    @property
    def removed(self) -> int:
        return sum(r.removed for r in self.rules) + self.orphans_removed

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.removed or self.events_written)

    def summary(self) -> str:
        mode = "all events" if self.full else f"{self.arrived} new or changed event(s)"
        return (f"tenant {self.tenant_id}: {mode}; links +{self.inserted} ~{self.updated} -{self.removed}; "
                f"{self.events_written} event(s) enriched")


def service_aliases(tenant_id: str, root=None) -> dict[str, str]:
    """The tenant's `service_aliases` (alias -> canonical service name), lower case; {} without a tenant file."""
    from integrations.tenants import load_tenant_config

    config = load_tenant_config(tenant_id, root)
    return normalize_aliases(config.service_aliases if config else {})


def normalize_aliases(aliases: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for alias, canonical in aliases.items():
        a = str(alias).strip().lower().removeprefix("service:")
        c = str(canonical).strip().lower().removeprefix("service:")
        if not a or not c:
            raise ConfigError(f"service alias '{alias}: {canonical}' is empty on one side", field="service_aliases")
        if a != c:
            out[a] = c
    return out


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def enrich(store: EventStore, tenant_id: str, rules: Sequence[Rule] | None = None, *,
           since: datetime | None = None, until: datetime | None = None, run_id: str | None = None,
           aliases: Mapping[str, str] | None = None, full: bool = False,
           conn: duckdb.DuckDBPyConnection | None = None) -> EnrichmentReport:
    """Correlate one tenant's events with `rules` (default: DEFAULT_RULES) in one transaction.

    since / until: revisit the events stored or changed in (since, until] (default: since the
    last run, up to now). full: revisit everything. aliases: service aliases (default: the tenant
    file's `service_aliases`). conn: run inside the caller's transaction.
    """
    if conn is None:
        with store.transaction() as own:
            return enrich(store, tenant_id, rules, since=since, until=until, run_id=run_id, aliases=aliases,
                          full=full, conn=own)
    started = time.monotonic()
    active = [r for r in (DEFAULT_RULES if rules is None else rules) if r.enabled]
    alias_map = service_aliases(tenant_id) if aliases is None else normalize_aliases(aliases)
    fingerprint = config_hash(active, alias_map)
    state, latest = read_enrichment_state(conn, tenant_id)
    if since is None and not full:
        if state.get("updated_at") and state.get("config") == fingerprint:
            since = _parse_time(state["updated_at"])
        else:
            full = True
    watermark = until if until is not None else latest
    report = EnrichmentReport(tenant_id=tenant_id, run_id=run_id, full=full, since=None if full else since,
                              watermark=watermark)
    kinds = sorted(set().union(*(r.kinds for r in active))) if active else []
    now = utcnow()
    touched: set[str] = set()
    stored = count_correlations(conn, tenant_id)
    try:
        if full:
            report.events = prepare_working_set(conn, tenant_id, kinds, alias_map)
            present = _kinds_present(conn)
            due = [r for r in active if _can_link(r, present) or stored.get(r.name)]
            revisited = {r.name: sum(present.get(k, 0) for k in r.event.kinds) for r in due}
            touched |= _run_rules(conn, tenant_id, due, scoped=False, run_id=run_id, now=now, report=report,
                                  revisited=revisited, stored=stored)
            report.orphans_removed += remove_other_rules(conn, tenant_id, [r.name for r in active]).removed
        else:
            assert since is not None
            report.arrived, lo, hi = fill_dirty(conn, tenant_id, kinds, since, until)
            if report.arrived and active:
                reach = timedelta(seconds=2 * max(r.span for r in active))
                report.events = prepare_working_set(conn, tenant_id, kinds, alias_map, time_range=(lo - reach, hi + reach))
                present = _kinds_present(conn)
                candidates = [r for r in active if _can_link(r, present) or stored.get(r.name)]
                revisited = fill_affected(conn, tenant_id, [(r.name, r.event.kinds, int(round(r.span * US)))
                                                            for r in candidates])
                due = [r for r in candidates if revisited.get(r.name)]
                touched |= _run_rules(conn, tenant_id, due, scoped=True, run_id=run_id, now=now, report=report,
                                      revisited=revisited, stored=stored)
                touched |= dirty_and_partners(conn, tenant_id)
        done = {r.rule for r in report.rules}
        report.rules += [RuleReport(rule=r.name, type=r.type) for r in active if r.name not in done]
        report.rules.sort(key=lambda r: [a.name for a in active].index(r.rule))
        if not full:  # a full run already dropped every row it did not find again
            orphans = remove_orphans(conn, tenant_id)
            report.orphans_removed += orphans.removed
            touched |= orphans.touched
        if full:
            report.events_written = write_enrichment_metadata(conn, tenant_id, None)
        elif touched:
            report.events_written = write_enrichment_metadata(conn, tenant_id, touched)
        if watermark is not None:
            write_enrichment_state(conn, tenant_id, watermark, fingerprint, now)
    finally:
        drop_working_set(conn)
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def _kinds_present(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many events of each kind the working set holds."""
    return dict(conn.execute("SELECT kind, count(*) FROM _enr_events GROUP BY kind").fetchall())


def _can_link(rule: Rule, present: Mapping[str, int]) -> bool:
    """Whether the working set has events for both sides of the rule (else it can make no link)."""
    return any(present.get(k) for k in rule.event.kinds) and any(present.get(k) for k in rule.related.kinds)


def _run_rules(conn: duckdb.DuckDBPyConnection, tenant_id: str, rules: Sequence[Rule], *, scoped: bool,
               run_id: str | None, now: datetime, report: EnrichmentReport, revisited: Mapping[str, int],
               stored: Mapping[str, int]) -> set[str]:
    """Every rule's links in one statement, then one reconciliation of the table: few round trips per run."""
    if not rules:
        return set()
    p = Params()
    union = " UNION ALL ".join(f"SELECT * FROM ({links_sql(rule, p, affected_only=scoped)})" for rule in rules)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _enr_links AS {union}", p.values)
    found = dict(conn.execute("SELECT rule, count(*) FROM _enr_links GROUP BY rule").fetchall())
    names = [rule.name for rule in rules]
    changes = reconcile_links(conn, tenant_id, names, scoped=scoped, run_id=run_id, now=now,
                              stored=any(stored.get(n) for n in names), found=bool(found))
    touched: set[str] = set()
    for rule in rules:
        change = changes.get(rule.name, LinkChanges())
        touched |= change.touched
        report.rules.append(RuleReport(rule=rule.name, type=rule.type, revisited=revisited.get(rule.name, 0),
                                       links=found.get(rule.name, 0), inserted=change.inserted,
                                       updated=change.updated, removed=change.removed))
    return touched
