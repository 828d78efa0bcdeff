"""Later runs revisit only what arrived or changed, and every window around it: late events are linked when they arrive."""

from __future__ import annotations

import json

import pytest

from integrations.enrichment import DEFAULT_RULES, enrich, load_rules
from tests.enrichment.enrichment_factory import alarm, deployment, make_event

RULES = [r for r in DEFAULT_RULES if r.name in ("deployment_before_alarm", "shipped_changes")]


def links(store, tenant="demo", rule=None):
    with store.reader() as conn:
        sql = "SELECT event_id, related_event_id, rule, delta_seconds, matched FROM correlations WHERE tenant_id = ?"
        params = [tenant]
        if rule:
            sql += " AND rule = ?"
            params.append(rule)
        return [(a, b, r, d, json.loads(m)) for a, b, r, d, m in conn.execute(sql + " ORDER BY ALL", params).fetchall()]


def enrichment(store, event_id):
    with store.reader() as conn:
        ctx = conn.execute("SELECT integration_context FROM events WHERE event_id = ?", [event_id]).fetchall()[0][0]
    return json.loads(ctx)["enrichment_metadata"].get("correlations", [])


def test_a_late_deployment_is_linked_when_it_arrives(store):
    store.upsert_events([alarm("demo", "a1", 30, "checkout-api")])
    first = enrich(store, "demo", RULES, aliases={})
    assert first.full and links(store) == []
    late = deployment("demo", "d1", 20, "checkout-api")
    store.upsert_events([late])
    second = enrich(store, "demo", RULES, aliases={})
    assert not second.full and second.arrived == 1 and second.inserted == 1
    ((event_id, related, rule, delta, matched),) = links(store)
    assert (related, rule, delta) == (late.event_id, "deployment_before_alarm", -600.0)
    assert matched["rank"] == 1 and matched["window"] == "30m"
    (entry,) = enrichment(store, event_id)
    assert entry["related_event_id"] == late.event_id and entry["source_integration"] == "github"
    (back,) = enrichment(store, late.event_id)
    assert back["related_event_id"] == event_id and back["source_integration"] == "cloudwatch"
    assert not enrich(store, "demo", RULES, aliases={}).changed


def test_a_nearer_late_deployment_takes_the_link_over(store):
    early = deployment("demo", "d1", 0, "checkout-api")
    the_alarm = alarm("demo", "a1", 25, "checkout-api")
    store.upsert_events([early, the_alarm])
    enrich(store, "demo", RULES, aliases={})
    assert [l[1] for l in links(store)] == [early.event_id]
    nearer = deployment("demo", "d2", 15, "checkout-api")
    store.upsert_events([nearer])
    report = enrich(store, "demo", RULES, aliases={})
    assert (report.inserted, report.removed) == (1, 1)
    assert [l[1] for l in links(store)] == [nearer.event_id]
    assert enrichment(store, early.event_id) == []          # no stale entry left on the old deployment
    assert [e["related_event_id"] for e in enrichment(store, nearer.event_id)] == [the_alarm.event_id]


def test_an_event_that_changes_loses_the_links_it_no_longer_qualifies_for(store):
    the_deployment = deployment("demo", "d1", 0, "checkout-api")
    store.upsert_events([the_deployment, alarm("demo", "a1", 10, "checkout-api")])
    enrich(store, "demo", RULES, aliases={})
    assert len(links(store)) == 1
    store.upsert_events([alarm("demo", "a1", 10, "checkout-api", severity="info")])   # same id, new content
    report = enrich(store, "demo", RULES, aliases={})
    assert report.removed == 1 and links(store) == []
    assert enrichment(store, the_deployment.event_id) == []


def test_source_content_changes_keep_the_enrichment_and_the_next_run_refreshes_it(store):
    the_deployment = deployment("demo", "d1", 0, "checkout-api")
    the_alarm = alarm("demo", "a1", 10, "checkout-api")
    store.upsert_events([the_deployment, the_alarm])
    enrich(store, "demo", RULES, aliases={})
    assert store.upsert_events([the_deployment]).unchanged == 1  # enrichment does not make content look changed
    assert len(enrichment(store, the_deployment.event_id)) == 1
    renamed = the_deployment.model_copy(update={"title": "Deployment, renamed"})
    assert store.upsert_events([renamed]).updated == 1
    assert len(enrichment(store, the_deployment.event_id)) == 1  # the store keeps enrichment across updates
    report = enrich(store, "demo", RULES, aliases={})
    assert report.inserted == report.removed == 0 and report.events_written == 1
    (entry,) = enrichment(store, the_alarm.event_id)
    assert entry["related_title"] == "Deployment, renamed"       # the partner shows the new title


def test_service_aliases_from_the_tenant_file_let_different_names_meet(store, tmp_path, monkeypatch):
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    monkeypatch.setenv("INTEGRATIONS_TENANTS", str(tenants))
    repo_named = deployment("demo", "d1", 0, "checkout")        # GitHub repository "checkout"
    the_alarm = alarm("demo", "a1", 10, "checkout-api")         # CloudWatch dimension "checkout-api"
    store.upsert_events([repo_named, the_alarm])
    assert enrich(store, "demo", RULES).inserted == 0
    (tenants / "demo.yaml").write_text("tenant: demo\nservice_aliases:\n  checkout: checkout-api\n")
    report = enrich(store, "demo", RULES)
    assert report.full and report.inserted == 1                 # new aliases: everything is looked at again
    ((_, related, _, _, matched),) = links(store)
    assert related == repo_named.event_id
    assert matched["keys"] == [{"key": "service:checkout-api", "event_value": "service:checkout-api",
                                "related_value": "service:checkout"}]


def test_changed_rules_start_over_and_drop_rules_no_longer_configured(store):
    store.upsert_events([deployment("demo", "d1", 0, "checkout-api"), alarm("demo", "a1", 10, "checkout-api")])
    enrich(store, "demo", RULES, aliases={})
    assert len(links(store)) == 1
    report = enrich(store, "demo", [RULES[1]], aliases={})
    assert report.full and report.removed == 1 and links(store) == []
    with store.reader() as conn:
        enriched = conn.execute("""SELECT count(*) FROM events
            WHERE json_exists(integration_context, '$.enrichment_metadata.correlations')""").fetchall()[0][0]
    assert enriched == 0


def test_links_of_deleted_events_are_dropped(store):
    the_deployment = deployment("demo", "d1", 0, "checkout-api")
    the_alarm = alarm("demo", "a1", 10, "checkout-api")
    store.upsert_events([the_deployment, the_alarm])
    enrich(store, "demo", RULES, aliases={})
    with store.transaction() as conn:  # what retention does
        conn.execute("DELETE FROM events WHERE event_id = ?", [the_deployment.event_id])
    report = enrich(store, "demo", RULES, aliases={})
    assert report.orphans_removed == 1 and links(store) == []
    assert enrichment(store, the_alarm.event_id) == []


def test_until_leaves_later_arrivals_for_the_next_run(store):
    store.upsert_events([alarm("demo", "a1", 30, "checkout-api")])
    enrich(store, "demo", RULES, aliases={})
    store.upsert_events([deployment("demo", "d1", 20, "checkout-api")])
    with store.reader() as conn:
        arrived = conn.execute("SELECT max(updated_at) FROM events").fetchall()[0][0]
    from datetime import timedelta

    held_back = enrich(store, "demo", RULES, aliases={}, until=arrived - timedelta(microseconds=1))
    assert held_back.arrived == 0 and links(store) == []
    assert enrich(store, "demo", RULES, aliases={}).inserted == 1


def test_a_pair_of_events_of_the_same_kinds_is_linked_once(store):
    rules = load_rules([{"name": "same_commit", "type": "shared_hint", "event": {"kinds": ["commit"]},
                         "related": {"kinds": ["commit"]}, "key": {"pattern": "^[0-9a-f]{40}$"}, "window": "1d",
                         "confidence": 1.0}])
    sha = "a" * 40
    first = make_event("demo", "commit", "c1", 0, sha=sha)
    later = make_event("demo", "commit", "c2", 5, sha=sha)
    store.upsert_events([first, later])
    enrich(store, "demo", rules, aliases={})
    assert [(l[0], l[1]) for l in links(store)] == [(later.event_id, first.event_id)]


@pytest.mark.parametrize("service, linked", [("checkout-api", True), ("payments", False)])
def test_a_metadata_rule_compares_attributes(store, service, linked):
    rules = load_rules([{"name": "same_env", "type": "metadata", "event": {"kinds": ["alarm"]},
                         "related": {"kinds": ["log"], "where": [{"field": "attributes.level", "in": ["ERROR"]}]},
                         "fields": ["attributes.service", "attributes.env"], "window": "5m", "confidence": 0.5}])
    store.upsert_events([
        make_event("demo", "alarm", "a1", 10, service="checkout-api", env="prod", severity="high"),
        make_event("demo", "log", "l1", 12, service=service, env="prod", level="ERROR"),
        make_event("demo", "log", "l2", 12, service="checkout-api", env="staging", level="ERROR"),
        make_event("demo", "log", "l3", 12, service="checkout-api", env="prod", level="INFO"),
    ])
    enrich(store, "demo", rules, aliases={})
    found = links(store)
    assert len(found) == (1 if linked else 0)
    if linked:
        assert [k["key"] for k in found[0][4]["keys"]] == ["attributes.service", "attributes.env"]
