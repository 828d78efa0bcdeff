"""Property 8 over random multi-tenant event sets that share service hints, SHAs and times."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.enrichment import DEFAULT_RULES, ShippedChangesRule, enrich
from integrations.enrichment._sql import US, window_bounds
from integrations.events import SEVERITIES
from integrations.store import EventStore
from tests.enrichment.enrichment_factory import make_event

# One rule of each type keeps an example cheap; every type is exercised.
RULES = [r for r in DEFAULT_RULES if r.name in ("deployment_before_alarm", "shipped_changes", "commit_of_run",
                                                 "error_logs_around_alarm")]
BY_NAME = {r.name: r for r in RULES}
SERVICES = ["checkout-api", "payments", None]
SHAS = ["a" * 40, "b" * 40, None]
KINDS = ["alarm", "deployment", "commit", "pull_request", "workflow_run", "log"]
TENANTS = ("t1", "t2")


@st.composite
def specs(draw):
    return {
        "kind": draw(st.sampled_from(KINDS)),
        "minute": draw(st.integers(0, 150)) + draw(st.sampled_from([0, 0.25, 0.5])),
        "service": draw(st.sampled_from(SERVICES)),
        "sha": draw(st.sampled_from(SHAS)),
        "severity": draw(st.sampled_from(SEVERITIES)),
        "branch": draw(st.sampled_from(["main", "feature"])),
        "environment": draw(st.sampled_from(["production", "staging"])),
        "merged": draw(st.booleans()),
        "source": draw(st.sampled_from(["github", "cloudwatch", "gitlab"])),
        "batch": draw(st.sampled_from([1, 2])),
    }


def build(tenant: str, name: str, spec: dict):
    kind, extra = spec["kind"], {}
    if kind == "deployment":
        extra = {"environment": spec["environment"], "ref": spec["branch"]}
    elif kind == "commit":
        extra = {"branch": spec["branch"]}
    elif kind == "pull_request":
        extra = {"step": "closed_merged" if spec["merged"] else "opened", "base_ref": spec["branch"],
                 "merge_commit_sha": spec["sha"] if spec["merged"] else None, "head_sha": "c" * 40}
    hints = ["c" * 40] if kind == "pull_request" else []
    return make_event(tenant, kind, name, spec["minute"], service=spec["service"],
                      sha=spec["sha"] if kind != "pull_request" else None, severity=spec["severity"],
                      hints=hints + ([spec["sha"]] if kind == "pull_request" and spec["merged"] and spec["sha"] else []),
                      source=spec["source"], **extra)


@st.composite
def scenarios(draw):
    """Events of t1; some mirrored into t2 with the same hints and times; t2's own; some changed in batch 2."""
    mine = draw(st.lists(specs(), max_size=9))
    mirrored = draw(st.lists(st.booleans(), min_size=len(mine), max_size=len(mine)))
    theirs = draw(st.lists(specs(), max_size=4))
    changed = draw(st.lists(st.tuples(st.integers(0, 8), specs()), max_size=2))
    events = [("t1", f"e{i}", s) for i, s in enumerate(mine)]
    events += [("t2", f"e{i}", s) for i, (s, m) in enumerate(zip(mine, mirrored)) if m]
    events += [("t2", f"x{i}", s) for i, s in enumerate(theirs)]
    changes = [("t1", f"e{i}", {**s, "kind": mine[i]["kind"], "batch": 2}) for i, s in changed if i < len(mine)]
    return events, changes


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory) -> EventStore:
    store = EventStore(tmp_path_factory.mktemp("enrichment-property") / "store.duckdb")
    store.initialize()
    return store


def rows(conn, sql, params=None):
    cur = conn.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def check_consistency(conn) -> None:
    """Every link in one tenant and inside its window; every enrichment entry attributed and matching the table."""
    links = rows(conn, """
        SELECT c.*, e.tenant_id AS event_tenant, r.tenant_id AS related_tenant
        FROM correlations c LEFT JOIN events e ON e.event_id = c.event_id
                            LEFT JOIN events r ON r.event_id = c.related_event_id""")
    stored = {r["event_id"]: r for r in rows(conn, "SELECT event_id, tenant_id, source_integration, integration_context "
                                                   "FROM events")}
    per_event: dict[str, int] = {}
    per_anchor: dict[tuple[str, str], int] = {}
    for link in links:
        assert link["tenant_id"] == link["event_tenant"] == link["related_tenant"]
        rule = BY_NAME[link["rule"]]
        delta_us = round(link["delta_seconds"] * US)
        if isinstance(rule, ShippedChangesRule):
            assert abs(delta_us) <= rule.window * US
            if json.loads(link["matched"])["via"] == "between_deployments":
                assert delta_us <= 0
        else:
            lo, hi = window_bounds(rule)
            assert lo <= delta_us <= hi
        assert 0 < link["confidence"] <= 1
        for end in (link["event_id"], link["related_event_id"]):
            per_event[end] = per_event.get(end, 0) + 1
        key = (rule.name, link["event_id"])
        per_anchor[key] = per_anchor.get(key, 0) + 1
    for (name, _), count in per_anchor.items():
        rule = BY_NAME[name]
        assert count <= (1 if rule.match == "nearest" else rule.max_links)
    for event_id, row in stored.items():
        entries = json.loads(row["integration_context"])["enrichment_metadata"].get("correlations", [])
        assert len(entries) == per_event.get(event_id, 0)
        for entry in entries:
            related = stored[entry["related_event_id"]]
            assert entry["rule"] in BY_NAME
            assert entry["source_integration"] == related["source_integration"]
            assert related["tenant_id"] == row["tenant_id"]


@settings(max_examples=100, deadline=None)
@given(scenario=scenarios())
def test_enrichment_keeps_attribution_stays_in_tenant_and_inside_windows(prop_store, scenario):
    """Feature: integrations, Property 8: Event Enrichment Consistency: for any event that can be enriched
    with external service context, the enrichment process identifies the opportunities and adds context while
    maintaining clear source attribution; it never joins across tenants, and every link stays inside its
    rule's bounded window.
    """
    events, changes = scenario
    store = prop_store
    with store.transaction() as conn:
        conn.execute("DELETE FROM correlations; DELETE FROM events; DELETE FROM watermarks")
        latest = {}
        for tenant, name, spec in events + changes:
            event = build(tenant, name, spec)
            latest[event.event_id] = event
        store.upsert_events(list(latest.values()), conn=conn)
        for tenant in TENANTS:
            enrich(store, tenant, RULES, aliases={}, conn=conn)
        check_consistency(conn)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_late_arrivals_end_with_the_links_of_a_full_run(prop_store, seed):
    """Events arriving in random batches (some changed or moved in time later) are correlated as they arrive:
    after the last incremental run, a full run finds nothing to change."""
    import random

    draw = random.Random(seed)
    store = prop_store
    with store.transaction() as conn:
        conn.execute("DELETE FROM correlations; DELETE FROM events; DELETE FROM watermarks")
    names = [f"e{i}" for i in range(36)]
    kinds = {name: draw.choice(KINDS) for name in names}  # a name keeps its kind: a repeat is the same event
    for wave in range(4):
        batch = []
        for name in draw.sample(names, 12):
            spec = {"kind": kinds[name], "minute": draw.randint(0, 150),
                    "service": draw.choice(SERVICES), "sha": draw.choice(SHAS), "severity": draw.choice(SEVERITIES),
                    "branch": draw.choice(["main", "feature"]), "environment": draw.choice(["production", "staging"]),
                    "merged": draw.random() < 0.5, "source": draw.choice(["github", "cloudwatch"]), "batch": wave}
            batch.append(build("t1", name, spec))
        store.upsert_events(list({e.event_id: e for e in batch}.values()))
        report = enrich(store, "t1", RULES, aliases={})
        assert report.full == (wave == 0)
    with store.transaction() as conn:
        check_consistency(conn)
    assert not enrich(store, "t1", RULES, aliases={}, full=True).changed
