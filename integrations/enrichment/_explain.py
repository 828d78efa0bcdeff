"""`explain()`: how one event was correlated, and what each rule considered and turned down.

For every rule that can look at the event (as the event it enriches, or as the related context
of another), the explanation lists the candidates around it with the check that decided: linked
(with the matched keys, the time difference and the score), or rejected with a reason a person
can act on ("outside the 30m window by 12 minutes", "different service: payments-worker").
Events of other tenants are never candidates: the working set holds this tenant's events only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from integrations.enrichment._duration import format_delta, format_duration, short_duration
from integrations.enrichment._enrich import normalize_aliases, service_aliases
from integrations.enrichment._rules import DEFAULT_RULES, Condition, MetadataRule, Rule, ShippedChangesRule
from integrations.enrichment._sql import (
    US,
    Params,
    considered_sql,
    drop_working_set,
    own_deployment_sql,
    own_fields_sql,
    own_keys_sql,
    own_side_sql,
    prepare_working_set,
    window_bounds,
)
from integrations.errors import UsageError
from integrations.events import format_rfc3339
from integrations.store import EventStore
from integrations.store._correlations import correlation_rows, list_correlations

DEFAULT_LIMIT = 25
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class EventRef:
    event_id: str
    kind: str
    title: str
    occurred_at: datetime
    source_integration: str

    def label(self) -> str:
        return f"{self.kind} {self.event_id[:8]} ({self.source_integration}, {format_rfc3339(self.occurred_at)})"


@dataclass
class Link:
    """A stored correlation of the event. role 'event': the rule enriched this event; 'related': it is the context."""

    rule: str
    role: str
    other: EventRef
    confidence: float
    delta_seconds: float          # the other event's time minus this event's
    matched: dict[str, Any]


@dataclass
class Candidate:
    other: EventRef
    delta_seconds: float          # the other event's time minus this event's
    accepted: bool
    reason: str
    confidence: float | None = None


@dataclass
class RuleExplanation:
    rule: str
    type: str
    description: str
    role: str                     # what this event is to the rule: 'event' or 'related'
    applies: bool
    note: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    truncated: bool = False


@dataclass
class Explanation:
    tenant_id: str
    event: EventRef
    links: list[Link]
    rules: list[RuleExplanation]
    other_rules: list[str]        # rules that never look at this kind of event

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        """The explanation as text for a terminal."""
        e = self.event
        lines = [f"{e.kind} {e.event_id} of tenant {self.tenant_id}",
                 f"  {e.title}", f"  {format_rfc3339(e.occurred_at)} from {e.source_integration}", ""]
        lines.append(f"Linked ({len(self.links)}):" if self.links else "Linked: nothing")
        for link in self.links:
            arrow = "enriched with" if link.role == "event" else "context of"
            lines.append(f"  [{link.rule}] {arrow} {link.other.kind} {link.other.event_id[:8]} "
                         f"from {link.other.source_integration}, {format_delta(link.delta_seconds)}, "
                         f"confidence {link.confidence:g}")
            lines.append(f"      {link.other.title[:100]}")
            lines.append(f"      {describe_matched(link.matched)}")
        for rule in self.rules:
            lines.append("")
            what = "the event it enriches" if rule.role == "event" else "the related context"
            lines.append(f"Rule {rule.rule} ({rule.type}), this {e.kind} as {what}")
            if rule.description:
                lines.append(f"  {rule.description}")
            if not rule.applies:
                lines.append(f"  does not apply: {rule.note}")
                continue
            if not rule.candidates:
                lines.append("  no candidates in reach")
            for c in rule.candidates:
                mark = "linked  " if c.accepted else "rejected"
                lines.append(f"  {mark} {c.other.label()} {format_delta(c.delta_seconds)}: {c.reason}")
            if rule.truncated:
                lines.append(f"  (only the {len(rule.candidates)} nearest candidates are shown)")
        if self.other_rules:
            lines += ["", f"Rules that never look at events of kind {e.kind}: {', '.join(self.other_rules)}"]
        return "\n".join(lines)


def describe_matched(matched: Mapping[str, Any]) -> str:
    """`service:checkout-api = service:checkout-api; window 30m before, nearest; score 0.9 x 0.73 = 0.657`."""
    parts = []
    keys = matched.get("keys") or []
    if keys:
        parts.append("matched " + ", ".join(_describe_key(k) for k in keys))
    if matched.get("via"):
        text = f"via {matched['via']}"
        if matched.get("via") == "between_deployments":
            prev = matched.get("previous_deployment")
            text += (f" (since the previous deployment {prev['event_id'][:8]} at {prev['occurred_at']})" if prev
                     else f" (first deployment: since {matched.get('since')}, lookback {matched.get('lookback')})")
        parts.append(text)
    if matched.get("window"):
        parts.append(f"window {matched['window']} {matched.get('direction', '')}, {matched.get('match', '')}".rstrip(", "))
    score = matched.get("score") or {}
    if score:
        parts.append(f"score {score.get('base')} x {score.get('time_factor')} = {score.get('confidence')}")
    return "; ".join(parts)


def short_value(value: Any) -> str:
    """Commit SHAs shortened to 7 characters, as GitHub shows them."""
    text = str(value)
    return text[:7] if _SHA.match(text) else text


def _describe_key(key: Mapping[str, Any]) -> str:
    name, left, right = key.get("key"), key.get("event_value"), key.get("related_value")
    if left == right == name:
        return short_value(name)
    if left == right:
        return f"{name} {short_value(left)}"
    return f"{name} ({short_value(left)} ~ {short_value(right)})"


def horizon(rule: Rule) -> float:
    """How far around an event explain looks for candidates: past the window, to show near misses."""
    return min(2 * rule.window, rule.window + 86400)


def explain(store: EventStore, tenant_id: str, event_id: str, rules: Sequence[Rule] | None = None, *,
            aliases: Mapping[str, str] | None = None, limit: int = DEFAULT_LIMIT) -> Explanation:
    """Explain the links of one of the tenant's events (a unique prefix of its id is enough)."""
    active = [r for r in (DEFAULT_RULES if rules is None else rules) if r.enabled]
    alias_map = service_aliases(tenant_id) if aliases is None else normalize_aliases(aliases)
    with store.reader() as conn:
        event = _resolve(conn, tenant_id, event_id)
        kinds = sorted(set().union(*(r.kinds for r in active))) if active else []
        reach = timedelta(seconds=max((horizon(r) + 2 * r.window for r in active), default=0))
        try:
            prepare_working_set(conn, tenant_id, kinds, alias_map,
                                time_range=(event.occurred_at - reach, event.occurred_at + reach),
                                include=[event.event_id])
            links = [_link(row, event.event_id) for row in list_correlations(conn, tenant_id, event_id=event.event_id)]
            explained: list[RuleExplanation] = []
            others: list[str] = []
            for rule in active:
                roles = [role for role, side in (("event", rule.event), ("related", rule.related))
                         if event.kind in side.kinds]
                if not roles:
                    others.append(rule.name)
                for role in roles:
                    explained.append(_explain_rule(conn, tenant_id, rule, role, event, links, limit))
        finally:
            drop_working_set(conn)
    return Explanation(tenant_id=tenant_id, event=event, links=links, rules=explained, other_rules=others)


def _resolve(conn: duckdb.DuckDBPyConnection, tenant_id: str, event_id: str) -> EventRef:
    rows = conn.execute("""
        SELECT event_id, kind, title, occurred_at, source_integration FROM events
        WHERE tenant_id = $tenant AND starts_with(event_id, $id) ORDER BY event_id LIMIT 2""",
                        {"tenant": tenant_id, "id": event_id.strip()}).fetchall()
    if not rows or len(event_id.strip()) < 4:
        raise UsageError(f"no event '{event_id}' in tenant {tenant_id}",
                         hint=f"list its events with `integrations events list --tenant {tenant_id}`")
    if len(rows) > 1 and rows[0][0] != event_id:
        raise UsageError(f"'{event_id}' is the start of more than one event id of tenant {tenant_id}",
                         hint="give more of the id")
    return EventRef(*rows[0])


def _link(row: Mapping[str, Any], event_id: str) -> Link:
    if row["event_id"] == event_id:
        other = EventRef(row["related_event_id"], row["related_kind"], row["related_title"],
                         row["related_occurred_at"], row["related_source_integration"])
        return Link(row["rule"], "event", other, row["confidence"], row["delta_seconds"], row["matched"])
    other = EventRef(row["event_id"], row["event_kind"], row["event_title"], row["event_occurred_at"],
                     row["event_source_integration"])
    return Link(row["rule"], "related", other, row["confidence"], -row["delta_seconds"], row["matched"])


def _fetch(conn: duckdb.DuckDBPyConnection, sql: str, p: Params) -> list[dict[str, Any]]:
    cur = conn.execute(sql, p.values)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _refs(conn: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> dict[str, EventRef]:
    rows = conn.execute("""SELECT event_id, kind, title, occurred_at, source_integration FROM _enr_events
                           WHERE list_contains($ids::VARCHAR[], event_id)""", {"ids": list(ids)}).fetchall()
    return {r[0]: EventRef(*r) for r in rows}


def condition_reason(cond: Condition, value: Any, kind: str) -> str:
    if cond.field == "severity" and cond.operator == "at_least":
        return f"the {kind} has severity {value}, below {cond.at_least}"
    shown = "missing" if value is None else f"'{value}'"
    return f"the {kind}'s {cond.field} is {shown}; the rule wants {cond.describe()}"


def window_reason(rule: Rule, delta_us: int, event_kind: str, related_kind: str) -> str | None:
    """Why a related-minus-event time is outside the window, or None when inside."""
    lo, hi = window_bounds(rule)
    if lo <= delta_us <= hi:
        return None
    d = delta_us / US
    w = short_duration(rule.window)
    said = f"the {related_kind} came {format_delta(d)} the {event_kind}"
    if rule.direction == "before" and d > 0:
        return f"{said}; the rule looks {w} before it"
    if rule.direction == "after" and d < 0:
        return f"{said}; the rule looks {w} after it"
    excess = (abs(delta_us) - max(abs(lo), abs(hi))) / US
    return f"{said}: outside the {w} window by {format_duration(excess)}"


def _strip(keys: Sequence[str], prefix: str | None) -> str:
    return ", ".join(short_value(k.removeprefix(prefix or "")) for k in keys)


def _explain_rule(conn: duckdb.DuckDBPyConnection, tenant_id: str, rule: Rule, role: str, event: EventRef,
                  links: Sequence[Link], limit: int) -> RuleExplanation:
    out = RuleExplanation(rule=rule.name, type=rule.type, description=rule.description, role=role, applies=True)
    side = rule.event if role == "event" else rule.related
    p = Params()
    own = _fetch(conn, own_side_sql(side, p, event.event_id), p)[0]
    for i, cond in enumerate(side.where):
        if not own[f"ok{i}"]:
            out.applies, out.note = False, condition_reason(cond, own[f"val{i}"], event.kind)
            return out
    own_keys: list[str] = []
    if isinstance(rule, ShippedChangesRule):
        if role == "event":
            p = Params()
            if not _fetch(conn, own_deployment_sql(rule, p, event.event_id), p):
                out.applies, out.note = False, f"this {event.kind} has no {rule.service_key.describe()}"
                return out
    elif isinstance(rule, MetadataRule):
        p = Params()
        values = _fetch(conn, own_fields_sql(rule.fields, p, event.event_id), p)[0]
        missing = [f for i, f in enumerate(rule.fields) if values[f"f{i}"] is None]
        if missing:
            out.applies, out.note = False, f"this {event.kind} has no {', '.join(missing)}"
            return out
    else:
        p = Params()
        own_keys = [r["key"] for r in _fetch(conn, own_keys_sql(rule.key, p, event.event_id), p)]
        if not own_keys:
            out.applies, out.note = False, f"this {event.kind} has no {rule.key.describe()}, so nothing can share it"
            return out
    p = Params()
    rows = _fetch(conn, considered_sql(rule, p, event.event_id, role, horizon(rule), limit), p)
    out.truncated = len(rows) >= limit
    refs = _refs(conn, [r["other_id"] for r in rows])
    mine = {link.other.event_id: link for link in links if link.rule == rule.name and link.role == role}
    # For the nearest / max_links reasons: what each candidate event linked instead (role 'related').
    theirs: dict[str, list[tuple[str, float]]] = {}
    if role == "related":
        for anchor, related, delta in correlation_rows(conn, tenant_id, rule.name, [r["other_id"] for r in rows]):
            theirs.setdefault(anchor, []).append((related, delta))
    for row in rows:
        other = refs[row["other_id"]]
        event_kind, related_kind = (event.kind, other.kind) if role == "event" else (other.kind, event.kind)
        delta_us = int(row["delta_us"])
        mine_delta = delta_us / US if role == "event" else -delta_us / US
        if isinstance(rule, ShippedChangesRule):
            reason = _shipped_reason(rule, row, role, other, event)
        else:
            reason = _link_reason(rule, row, role, other, event, own_keys)
            if reason is None:
                reason = window_reason(rule, delta_us, event_kind, related_kind)
            if reason is None and not row["oriented"]:
                reason = "counted once: this pair is linked the other way round, from the later event"
        link = mine.get(other.event_id)
        if link is not None:
            out.candidates.append(Candidate(other, mine_delta, True, describe_matched(link.matched), link.confidence))
            continue
        if reason is None:
            reason = _not_chosen(rule, role, event, other, mine, theirs)
        out.candidates.append(Candidate(other, mine_delta, False, reason))
    return out


def _link_reason(rule: Rule, row: Mapping[str, Any], role: str, other: EventRef, event: EventRef,
                 own_keys: Sequence[str]) -> str | None:
    other_side = rule.related if role == "event" else rule.event
    tag = "r" if role == "event" else "e"
    for i, cond in enumerate(other_side.where):
        if not row[f"ok_{tag}{i}"]:
            return condition_reason(cond, row[f"val_{tag}{i}"], other.kind)
    if isinstance(rule, MetadataRule):
        mine, theirs = ("e", "r") if role == "event" else ("r", "e")
        for i, f in enumerate(rule.fields):
            if row[f"{theirs}key{i}"] is None:
                return f"the {other.kind} has no {f}"
            if row[f"{theirs}key{i}"] != row[f"{mine}key{i}"]:
                return f"different {f}: '{row[f'{theirs}raw{i}']}', not '{row[f'{mine}raw{i}']}'"
        return None
    other_keys = sorted(row["rkeys" if role == "event" else "ekeys"] or [])
    if set(other_keys) & set(own_keys):
        return None
    key = rule.key  # type: ignore[union-attr]
    if not other_keys:
        return f"the {other.kind} has no {key.describe()}"
    if key.prefix == "service:":
        return f"different service: {_strip(other_keys, key.prefix)}, not {_strip(own_keys, key.prefix)}"
    return (f"no shared {key.describe()}: the {other.kind} has {_strip(other_keys, None)}, "
            f"this {event.kind} has {_strip(own_keys, None)}")


def _shipped_reason(rule: ShippedChangesRule, row: Mapping[str, Any], role: str, other: EventRef,
                    event: EventRef) -> str | None:
    change_kind = other.kind if role == "event" else event.kind
    if role == "event":
        for i, cond in enumerate(rule.related.where):
            if not row[f"ok_r{i}"]:
                return condition_reason(cond, row[f"val_r{i}"], other.kind)
    delta_us = int(row["delta_us"])
    w = int(round(rule.window * US))
    if row["via"]:
        if abs(delta_us) <= w:
            return None
        return (f"same SHA ({row['via']}) but {format_duration(delta_us / US)} apart: outside the "
                f"{short_duration(rule.window)} window by {format_duration((abs(delta_us) - w) / US)}")
    services = row["ckeys"] or []
    if row["service"] not in services:
        if not services:
            return f"no SHA in common, and the {change_kind} has no {rule.service_key.describe()}"
        prefix = rule.service_key.prefix
        return f"no SHA in common, and a different service: {_strip(services, prefix)}, not {_strip([row['service']], prefix)}"
    if row["branch"] != row["ref"]:
        return (f"no SHA in common, and the {change_kind} is on {row['branch'] or 'no branch'} "
                f"while the deployment shipped {row['ref'] or 'an unknown ref'}")
    if delta_us > 0:
        return f"the {change_kind} came {format_duration(delta_us / US)} after the deployment"
    if row["change_t_us"] <= row["lower_us"]:
        if not row["first_deployment"]:
            return (f"already shipped by the previous deployment {row['prev_event_id'][:8]} "
                    f"({format_rfc3339(row['prev_occurred_at'])})")
        return (f"older than the {short_duration(rule.window)} lookback by "
                f"{format_duration((row['lower_us'] - row['change_t_us']) / US)}")
    return None


def _not_chosen(rule: Rule, role: str, event: EventRef, other: EventRef, mine: Mapping[str, Link],
                theirs: Mapping[str, list[tuple[str, float]]]) -> str:
    keep = 1 if rule.match == "nearest" else rule.max_links
    if role == "event" and mine:
        nearest = min(mine.values(), key=lambda link: abs(link.delta_seconds))
        if keep == 1:
            return (f"passes every check, but the nearer {nearest.other.kind} {nearest.other.event_id[:8]} "
                    f"({format_delta(nearest.delta_seconds)}) was linked: the rule keeps the nearest only")
        return f"passes every check, but the rule keeps the {keep} nearest"
    if role == "related" and theirs.get(other.event_id):
        related, delta = min(theirs[other.event_id], key=lambda t: abs(t[1]))
        if keep == 1:
            return (f"passes every check, but that {other.kind} linked its nearest {event.kind} {related[:8]} "
                    f"({format_delta(delta)} it) instead")
        return f"passes every check, but that {other.kind} keeps its {keep} nearest"
    return "passes every check but is not linked yet: run the enrichment (`integrations correlations enrich`)"
