"""End to end on the bundled samples: `integrations run` for demo and acme into one store, then enrich.

One store for the whole module (mapping the samples takes a few seconds). An acme "twin" of
demo's checkout-api deployment and alarm (same service, same SHA, same times) is planted, to
show that nothing is ever linked across tenants.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from integrations.enrichment import DEFAULT_RULES, enrich
from integrations.mapping import PythonEngine, load_mapping
from integrations.store import EventStore
from tests.conftest import ROOT, Cli
from tests.enrichment.enrichment_factory import make_event

DEMO_SHA = "86b5646bfa69c5fab05abe58292ef0eed5ddd7dd"


@dataclass
class Samples:
    store: EventStore
    path: Path
    reports: dict
    twins: dict[str, str]

    def query(self, sql: str, params=None) -> list[dict]:
        with self.store.reader() as conn:
            cur = conn.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def event(self, tenant: str, kind: str, title_start: str) -> dict:
        rows = self.query("SELECT * FROM events WHERE tenant_id = ? AND kind = ? AND starts_with(title, ?)",
                          [tenant, kind, title_start])
        assert len(rows) == 1, (kind, title_start, [r["title"] for r in rows])
        row = rows[0]
        row["integration_context"] = json.loads(row["integration_context"])
        return row

    def links(self, tenant: str, rule: str | None = None) -> list[dict]:
        sql = "SELECT * FROM correlations WHERE tenant_id = ?"
        params = [tenant]
        if rule:
            sql += " AND rule = ?"
            params.append(rule)
        rows = self.query(sql, params)
        for row in rows:
            row["matched"] = json.loads(row["matched"])
        return rows


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Samples:
    tmp = tmp_path_factory.mktemp("enrichment-samples")
    path = tmp / "store.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        for name in ("INTEGRATIONS_STORE", "INTEGRATIONS_MASTER_KEY", "INTEGRATIONS_MASTER_KEY_OLD"):
            mp.delenv(name, raising=False)
        mp.setenv("INTEGRATIONS_MASTER_KEY_FILE", str(tmp / "master.key"))
        mp.setenv("INTEGRATIONS_WEBHOOK_INBOX", str(tmp / "inbox.sqlite"))
        mp.setenv("INTEGRATIONS_TENANTS", str(tmp / "no-tenant-files"))
        mp.setenv("INTEGRATIONS_RUNNER_CONFIG", str(tmp / "no-runner.yaml"))
        result = Cli()("run", "--db", str(path), "--tenant", "demo", "--tenant", "acme", "--engine", "python")
        assert result.code == 0, result
    store = EventStore(path)
    twins = {
        "deployment": make_event("acme", "deployment", "twin-deployment", 20 + 2 / 60, service="checkout-api",
                                 sha=DEMO_SHA, environment="production", ref="main"),
        "alarm": make_event("acme", "alarm", "twin-alarm", 36 + 14.523 / 60, service="checkout-api", severity="high"),
    }
    store.upsert_events(list(twins.values()))
    reports = {tenant: enrich(store, tenant, DEFAULT_RULES, aliases={}) for tenant in ("demo", "acme")}
    return Samples(store, path, reports, {k: e.event_id for k, e in twins.items()})


def entries(event: dict) -> list[dict]:
    return event["integration_context"]["enrichment_metadata"].get("correlations", [])


def test_deployment_then_alarm_is_linked_with_attribution(samples):
    alarm = samples.event("demo", "alarm", "Alarm checkout-api-5xx-high OK -> ALARM")
    deployment = samples.event("demo", "deployment", "Deployment of main (86b5646) to production")
    (link,) = [row for row in samples.links("demo", "deployment_before_alarm") if row["event_id"] == alarm["event_id"]]
    assert link["related_event_id"] == deployment["event_id"]
    assert link["delta_seconds"] == pytest.approx(-(16 * 60 + 12.523))
    assert 0.45 < link["confidence"] < 0.9
    assert link["matched"]["keys"] == [{"key": "service:checkout-api", "event_value": "service:checkout-api",
                                        "related_value": "service:checkout-api"}]
    assert set(link["matched"]["score"]) == {"base", "time_factor", "confidence"}

    (on_alarm,) = [e for e in entries(alarm) if e["rule"] == "deployment_before_alarm"]
    assert on_alarm["related_event_id"] == deployment["event_id"]
    assert (on_alarm["related_kind"], on_alarm["source_integration"], on_alarm["role"]) == ("deployment", "github", "event")
    (on_deployment,) = [e for e in entries(deployment) if e["rule"] == "deployment_before_alarm"]
    assert on_deployment["related_event_id"] == alarm["event_id"]
    assert (on_deployment["source_integration"], on_deployment["role"]) == ("cloudwatch", "related")
    assert on_deployment["delta_seconds"] == pytest.approx(16 * 60 + 12.523)


def test_acme_alarms_follow_their_production_deployment(samples):
    deployment = samples.event("acme", "deployment", "Deployment of main (b552571) to production")
    linked = {row["event_id"]: row["related_event_id"] for row in samples.links("acme", "deployment_before_alarm")}
    critical = samples.event("acme", "alarm", "Alarm web-frontend-5xx-critical OK -> ALARM")
    latency = samples.event("acme", "alarm", "Alarm web-frontend-latency-high OK -> ALARM")
    assert linked[critical["event_id"]] == linked[latency["event_id"]] == deployment["event_id"]
    recovered = samples.event("acme", "alarm", "Alarm web-frontend-5xx-critical ALARM -> OK")
    assert recovered["event_id"] not in linked  # severity info: not an alarm the rule enriches


def test_squash_merged_pr_is_shipped_by_its_deployments_through_merge_commit_sha(samples):
    pr = samples.event("demo", "pull_request", "PR #41 merged")
    assert pr["attributes"] and json.loads(pr["attributes"])["merge_commit_sha"] == DEMO_SHA
    shipped = [row for row in samples.links("demo", "shipped_changes") if row["related_event_id"] == pr["event_id"]]
    deployments = [samples.query("SELECT kind, attributes->>'sha' AS sha, attributes->>'environment' AS env "
                                 "FROM events WHERE event_id = ?", [row["event_id"]])[0] for row in shipped]
    assert sorted((d["kind"], d["sha"], d["env"]) for d in deployments) == [
        ("deployment", DEMO_SHA, "production"), ("deployment", DEMO_SHA, "staging")]
    assert {row["matched"]["via"] for row in shipped} == {"merge_commit_sha"}
    assert all(row["confidence"] == 1.0 and row["delta_seconds"] < 0 for row in shipped)
    acme_pr = samples.event("acme", "pull_request", "PR #8 merged")
    vias = {row["matched"]["via"] for row in samples.links("acme", "shipped_changes")
            if row["related_event_id"] == acme_pr["event_id"]}
    assert vias == {"merge_commit_sha"}


def test_deployment_ships_the_changes_since_the_previous_one_and_a_first_deployment_looks_back(samples):
    previous = samples.event("demo", "deployment", "Deployment of main (86b5646) to production")
    latest = samples.event("demo", "deployment", "Deployment of main (c6e8215) to production")
    revert = samples.event("demo", "commit", "Commit 5a41481")
    rows = {row["related_event_id"]: row for row in samples.links("demo", "shipped_changes")
            if row["event_id"] == latest["event_id"]}
    assert rows[revert["event_id"]]["matched"]["via"] == "between_deployments"
    assert rows[revert["event_id"]]["matched"]["previous_deployment"]["event_id"] == previous["event_id"]
    assert rows[revert["event_id"]]["confidence"] == 0.6
    feature = samples.event("demo", "commit", "Commit 24e2c23")  # on the feature branch: squash-merged as 86b5646
    assert feature["event_id"] not in rows
    first = [row for row in samples.links("demo", "shipped_changes") if row["event_id"] == previous["event_id"]]
    assert first and all(row["matched"]["first_deployment"] for row in first)
    assert all(row["matched"]["previous_deployment"] is None for row in first)


def test_nothing_is_ever_linked_across_tenants(samples):
    crossing = samples.query("""
        SELECT c.* FROM correlations c
        LEFT JOIN events e ON e.event_id = c.event_id
        LEFT JOIN events r ON r.event_id = c.related_event_id
        WHERE e.tenant_id IS DISTINCT FROM c.tenant_id OR r.tenant_id IS DISTINCT FROM c.tenant_id""")
    assert crossing == []
    tenants = {row["event_id"]: row["tenant_id"] for row in samples.query("SELECT event_id, tenant_id FROM events")}
    enriched = samples.query("""SELECT event_id, tenant_id, integration_context FROM events
                                WHERE json_exists(integration_context, '$.enrichment_metadata.correlations')""")
    assert enriched
    for row in enriched:
        for entry in json.loads(row["integration_context"])["enrichment_metadata"]["correlations"]:
            assert tenants[entry["related_event_id"]] == row["tenant_id"]
            assert entry["rule"] and entry["source_integration"] in ("github", "cloudwatch")
    # The planted acme twins share service, SHA and times with demo's events: linked to each other only.
    demo_alarm = samples.event("demo", "alarm", "Alarm checkout-api-5xx-high OK -> ALARM")
    assert {row["related_event_id"] for row in samples.links("demo") if row["event_id"] == demo_alarm["event_id"]} \
        .isdisjoint(samples.twins.values())
    (twin_link,) = samples.links("acme", "deployment_before_alarm") and [
        row for row in samples.links("acme", "deployment_before_alarm") if row["event_id"] == samples.twins["alarm"]]
    assert twin_link["related_event_id"] == samples.twins["deployment"]
    assert all(row["tenant_id"] == "acme" for row in samples.links("acme"))


def snapshot(samples: Samples) -> tuple[list, list]:
    rows = samples.query("SELECT * FROM correlations ORDER BY ALL")
    events = samples.query("SELECT event_id, integration_context::VARCHAR AS ctx, content_hash, updated_at FROM events "
                           "ORDER BY event_id")
    return rows, events


def test_enriching_again_changes_nothing(samples):
    before = snapshot(samples)
    for tenant in ("demo", "acme"):
        again = enrich(samples.store, tenant, DEFAULT_RULES, aliases={})
        assert not again.full and not again.changed, again
        full = enrich(samples.store, tenant, DEFAULT_RULES, aliases={}, full=True)
        assert full.full and not full.changed, full
    assert snapshot(samples) == before


def test_unchanged_source_content_keeps_its_enrichment(samples):
    before = snapshot(samples)
    mapping = load_mapping(ROOT / "mappings" / "github" / "deployment.yaml")
    records = [json.loads(line) for line in (ROOT / "data/samples/demo/github/deployment.jsonl").read_text().splitlines()
               if line.strip()]
    events = PythonEngine().map(mapping, records, tenant_id="demo").events
    counts = samples.store.upsert_events(events)
    assert counts.unchanged == len(events) and counts.inserted == counts.updated == 0
    assert snapshot(samples) == before


def test_explain_shows_the_link_and_the_rejected_candidates(samples, cli):
    alarm = samples.event("demo", "alarm", "Alarm checkout-api-5xx-high OK -> ALARM")
    deployment = samples.event("demo", "deployment", "Deployment of main (86b5646) to production")
    result = cli("correlations", "explain", alarm["event_id"][:13], "--db", str(samples.path), "--tenant", "demo")
    assert result.code == 0, result
    out = result.out
    section = out[out.index("Rule deployment_before_alarm"):out.index("Rule error_logs_around_alarm")]
    assert f"linked   deployment {deployment['event_id'][:8]}" in section
    assert "16 minutes 13 seconds before" in section and "matched service:checkout-api" in section
    assert "outside the 30m window by 6 minutes 10 seconds" in section     # the staging deployment at 10:00:05
    assert "different service: payments-worker, not checkout-api" in section
    assert "came 15 minutes 48 seconds after the alarm; the rule looks 30m before it" in section
    assert samples.twins["deployment"][:8] not in out                     # never a candidate: other tenant
    as_json = cli("correlations", "explain", alarm["event_id"], "--db", str(samples.path), "--tenant", "demo", "--json")
    (doc,) = as_json.json_lines()
    rule = next(r for r in doc["rules"] if r["rule"] == "deployment_before_alarm")
    accepted = [c for c in rule["candidates"] if c["accepted"]]
    assert [c["other"]["event_id"] for c in accepted] == [deployment["event_id"]]
    assert all(c["reason"] for c in rule["candidates"])


def test_explain_names_why_a_commit_was_not_shipped(samples, cli):
    deployment = samples.event("demo", "deployment", "Deployment of main (86b5646) to production")
    result = cli("correlations", "explain", deployment["event_id"], "--db", str(samples.path), "--tenant", "demo")
    section = result.out[result.out.index("Rule shipped_changes"):]
    assert "via merge_commit_sha" in section
    assert "is on feature/retry-timeouts while the deployment shipped main" in section
    assert "attributes.step is 'opened'; the rule wants attributes.step equals closed_merged" in section


def test_explain_refuses_an_event_of_another_tenant(samples, cli):
    result = cli("correlations", "explain", samples.twins["alarm"], "--db", str(samples.path), "--tenant", "demo")
    assert result.code == 2
    assert f"no event '{samples.twins['alarm']}' in tenant demo" in result.err


def test_list_command(samples, cli):
    result = cli("correlations", "list", "--db", str(samples.path), "--tenant", "acme", "--rule",
                 "deployment_before_alarm", "--json")
    rows = result.json_lines()
    assert len(rows) == 3 and {r["rule"] for r in rows} == {"deployment_before_alarm"}
    assert {(r["event_source_integration"], r["related_source_integration"]) for r in rows} == {("cloudwatch", "github")}
    table = cli("correlations", "list", "--db", str(samples.path), "--tenant", "demo")
    assert table.code == 0 and "deployment_before_alarm" in table.out and "shipped_changes" in table.out
